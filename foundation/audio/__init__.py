"""Audio features and the audio encoder (content latents at 25 Hz + speaker embeddings)."""

from foundation.audio.encoder import AudioEncoder, AudioEncoderConfig, EncoderOutput
from foundation.audio.features import BatchFeatures, FeatureConfig, batch_features, log_mel, mfcc, n_frames
from foundation.audio.losses import AAMSoftmax, CPCLoss, speaker_ids, speaker_vocab

__all__ = [
    "AAMSoftmax", "AudioEncoder", "AudioEncoderConfig", "BatchFeatures", "CPCLoss", "EncoderOutput",
    "FeatureConfig", "batch_features", "log_mel", "mfcc", "n_frames", "speaker_ids", "speaker_vocab",
]
