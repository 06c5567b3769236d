"""Audio features and the audio encoder: frame alignment, shapes, streaming, and that it learns."""

import pickle

import pytest
import torch

from datasets.errors import ReplicaError
from datasets.loader import LoaderConfig, ShardLoader
from datasets.shards import write_dataset
from foundation.audio import (AAMSoftmax, AudioEncoder, AudioEncoderConfig, BatchFeatures, CPCLoss, FeatureConfig,
                              log_mel, mfcc, n_frames, speaker_ids, speaker_vocab)
from datasets.toy import toy_sample




def tones(n_speakers: int, per_speaker: int, seconds: float = 2.0) -> tuple[torch.Tensor, list[str]]:
    """Gated tones, one pitch per 'speaker' and one gating rhythm per utterance: [n, T] at 16 kHz."""
    t = torch.arange(int(seconds * 16000)) / 16000
    gen = torch.Generator().manual_seed(0)
    wavs, names = [], []
    for s in range(n_speakers):
        for u in range(per_speaker):
            gate = (torch.sin(2 * torch.pi * (3 + u) * t) > 0).float()
            wavs.append(0.3 * gate * torch.sin(2 * torch.pi * (120 + 60 * s) * t) + 0.01 * torch.randn(len(t), generator=gen))
            names.append(f"spk{s}")
    return torch.stack(wavs), names


@pytest.mark.parametrize("samples", [64000, 64100, 640 * 7])
def test_features_have_one_frame_per_hop_and_four_per_video_frame(samples):
    cfg = FeatureConfig()
    wav = 0.1 * torch.randn(2, samples)
    assert cfg.frames_per_video_frame == 4
    assert log_mel(wav, cfg).shape == (2, samples // 160, 80) == (2, n_frames(samples, cfg), cfg.n_mels)
    assert mfcc(wav, cfg).shape == (2, samples // 160, cfg.n_mfcc)


@pytest.mark.parametrize("frame,hop", [(0, 0), (10, 3), (99, 2)])
def test_a_click_lands_in_the_feature_frame_of_its_video_frame(frame, hop):
    wav = torch.zeros(1, 64000)
    wav[0, 640 * frame + 160 * hop + 80] = 1.0  # the middle of hop `hop` of video frame `frame`
    energy = log_mel(wav).exp().sum(-1)[0]
    assert int(energy.argmax()) == 4 * frame + hop


def test_silence_gives_the_log_floor_not_minus_infinity():
    mel = log_mel(torch.zeros(1, 1600), FeatureConfig(log_floor=1e-6))
    assert torch.allclose(mel, torch.full_like(mel, torch.log(torch.tensor(1e-6)).item()))


def test_batch_transform_pickles_and_adds_mel_with_valid_lengths():
    transform = pickle.loads(pickle.dumps(BatchFeatures(FeatureConfig())))
    batch = transform({"wav": 0.1 * torch.randn(2, 16000), "wav_len": torch.tensor([16000, 9000])})
    assert batch["mel"].shape == (2, 100, 80)
    assert batch["mel_len"].tolist() == [100, 56]


def test_loader_workers_add_features_with_four_frames_per_video_frame(tmp_path):
    write_dataset(str(tmp_path), (toy_sample(f"k{i}", seconds=0.3 + 0.2 * i, seed=i) for i in range(4)))
    loader = ShardLoader(str(tmp_path), LoaderConfig(batch_size=4, window_s=0.6, num_workers=1, random_crop=False),
                         transform=BatchFeatures(FeatureConfig()))
    batch = next(iter(loader))
    assert batch["mel"].shape == (4, 60, 80) and batch["mm"]["expr"].shape == (4, 15, 52)
    assert batch["mel_len"].tolist() == (batch["wav_len"] // 160).tolist()
    # A clip's frame count is rounded, so its last video frame may hold only part of a frame of audio.
    assert ((batch["frames_len"] - batch["mel_len"] / 4).abs() <= 0.5).all()


def test_inconsistent_feature_config_is_a_user_error():
    with pytest.raises(ReplicaError, match="n_fft"):
        FeatureConfig(win=600, n_fft=512)


def test_encoder_gives_a_latent_per_video_frame_and_a_unit_speaker_embedding():
    encoder = AudioEncoder()
    out = encoder(torch.randn(3, 400, 80), torch.tensor([400, 250, 37]))
    assert out.latent.shape == out.local.shape == (3, 100, encoder.cfg.dim)
    assert out.embedding.shape == (3, encoder.cfg.embed_dim)
    assert torch.allclose(out.embedding.norm(dim=-1), torch.ones(3))
    assert out.latent_len.tolist() == [100, 62, 9]


def test_tiny_preset_is_small_and_cluster_preset_is_tens_of_millions():
    assert 100_000 <= sum(p.numel() for p in AudioEncoder().parameters()) <= 300_000
    with torch.device("meta"):
        cluster = AudioEncoder(AudioEncoderConfig.cluster())
    assert 20e6 <= sum(p.numel() for p in cluster.parameters()) <= 50e6


def test_speaker_embedding_ignores_frames_past_the_valid_length():
    encoder = AudioEncoder(AudioEncoderConfig(lookahead=0)).eval()
    mel = torch.randn(1, 200, 80)
    noisy_tail = mel.clone()
    noisy_tail[:, 120:] = torch.randn(1, 80, 80) * 5
    lengths = torch.tensor([120])
    assert torch.allclose(encoder(mel, lengths).embedding, encoder(noisy_tail, lengths).embedding, atol=1e-6)


@pytest.mark.parametrize("lookahead", [0, 2])
def test_a_latent_sees_exactly_lookahead_frames_of_the_future(lookahead):
    encoder = AudioEncoder(AudioEncoderConfig(lookahead=lookahead)).eval()
    mel = torch.randn(1, 160, 80)
    changed = mel.clone()
    changed[:, 4 * 25:] += 1.0  # alter the audio from video frame 25 on
    before, after = encoder(mel).latent, encoder(changed).latent
    assert torch.allclose(before[:, : 25 - lookahead], after[:, : 25 - lookahead], atol=1e-5)
    assert not torch.allclose(before[:, 25 - lookahead], after[:, 25 - lookahead], atol=1e-3)


@pytest.mark.parametrize("left_context", [None, 6])
def test_streaming_the_encoder_in_chunks_equals_the_full_sequence(left_context):
    encoder = AudioEncoder(AudioEncoderConfig(left_context=left_context)).eval()
    mel = torch.randn(2, 240, 80)
    with torch.no_grad():
        full = encoder(mel).latent
        pieces = list(encoder.stream(mel.split([4, 8, 40, 4, 100, 84], dim=1)))
    assert torch.cat(pieces, dim=1).shape == full.shape
    assert torch.allclose(torch.cat(pieces, dim=1), full, atol=1e-5)


def test_gradients_reach_every_encoder_parameter():
    encoder = AudioEncoder()
    out = encoder(torch.randn(2, 80, 80))
    (out.latent.square().mean() + out.embedding.sum()).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in encoder.parameters())


def test_speaker_and_content_losses_fall_on_a_tiny_overfit():
    torch.manual_seed(0)
    wav, names = tones(n_speakers=4, per_speaker=2)
    vocab = speaker_vocab(names)
    encoder = AudioEncoder()
    aam = AAMSoftmax(len(vocab), encoder.cfg.embed_dim)
    cpc = CPCLoss(encoder.cfg.dim, first_step=encoder.cfg.lookahead + 1)
    optim = torch.optim.Adam([*encoder.parameters(), *aam.parameters(), *cpc.parameters()], lr=3e-3)
    mel, ids = log_mel(wav), speaker_ids(names, vocab)
    history = []
    for _ in range(30):
        out = encoder(mel)
        speaker, content = aam(out.embedding, ids), cpc(out.latent, out.local, out.latent_len)
        optim.zero_grad()
        (speaker + content).backward()
        optim.step()
        history.append((speaker.item(), content.item()))
    assert history[-1][0] < 0.1 * history[0][0]
    assert history[-1][1] < 0.8 * history[0][1]


def test_speaker_ids_follow_the_vocabulary_and_reject_strangers():
    vocab = speaker_vocab(["bob", "ann", "bob"])
    assert vocab == {"ann": 0, "bob": 1}
    assert speaker_ids(["bob", "ann"], vocab).tolist() == [1, 0]
    with pytest.raises(ReplicaError, match="carl"):
        speaker_ids(["carl"], vocab)


def test_angular_margin_makes_the_true_class_harder():
    embedding, ids = torch.randn(8, 16), torch.arange(8) % 3
    plain, margin = AAMSoftmax(3, 16, margin=0.0), AAMSoftmax(3, 16, margin=0.3)
    margin.load_state_dict(plain.state_dict())
    assert margin(embedding, ids) > plain(embedding, ids)
