"""`replica demo`: the whole system end to end on tiny data, as a new user's first run.

Each step prints what it did and where its outputs went; later stages append their steps here.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from rich.console import Console

from datasets import storage
from launch.config import ReplicaConfig, save_config, with_options


def _step(console: Console, title: str):
    console.rule(f"[bold]{title}")
    return time.perf_counter()


def avatar_step(cfg: ReplicaConfig, out: str, console: Console, person_video: str, person_params: str) -> str:
    """Train a tiny avatar on the demo person (held-out quality printed) and write its side-by-side sheet.

    Returns the avatar's URL (`<out>/avatar/avatar.pt`, with `avatar.quality.json` and `side_by_side.png`).
    """
    from launch.avatar_cli import device_and_backend
    from render.fit import fit_avatar, quality_lines, save_fit
    from render.video import read_person, write_png

    t = _step(console, "7. avatar: Gaussian splats bound to the head mesh + GAN refiner")
    device, backend = device_and_backend(cfg)
    avatar_cfg = with_options(cfg.avatar, "avatar", backend=backend)
    frames, params, camera, _ = read_person(person_video, person_params, avatar_cfg.image_size)
    result = fit_avatar(frames, params, camera, avatar_cfg, cfg.refine, device=device)
    avatar_url = storage.join(out, "avatar", "avatar.pt")
    quality_url = save_fit(result, avatar_url)
    sheet_url = storage.join(out, "avatar", "side_by_side.png")
    if result.sheet is not None:
        write_png(sheet_url, result.sheet)
    for line in quality_lines(result.quality):
        console.print(f"  {line}", highlight=False)
    console.print(f"  {result.quality['n_gaussians']} Gaussians; avatar {avatar_url}, quality {quality_url}, "
                  f"sheet {sheet_url} ({time.perf_counter() - t:.1f}s)", highlight=False)
    return avatar_url


def data_step(cfg: ReplicaConfig, out: str, console: Console) -> dict[str, str]:
    """Build the demo datasets: rendered synthetic clips (with a contact sheet), and audio + parameter sets
    for pre-training, whose held-out speakers use voices the training set never has. Returns their URLs."""
    from cluster.synth import synth_dataset
    from datasets.shards import read_manifest
    from foundation.world import HELDOUT_VOICES, TRAIN_VOICES

    t = _step(console, "3. data: the synthetic talking-head world → WebDataset shards")
    urls = {"clips": storage.join(out, "data", "clips"), "train": storage.join(out, "data", "train"),
            "heldout": storage.join(out, "data", "heldout")}
    worlds = {
        "clips": cfg.synth,
        "train": with_options(cfg.synth, "synth", video=False, identities=cfg.demo.train_identities,
                              clips_per_identity=cfg.demo.train_clips_per_identity, seed=1, voices=TRAIN_VOICES),
        "heldout": with_options(cfg.synth, "synth", video=False, identities=cfg.demo.heldout_identities,
                                clips_per_identity=cfg.demo.heldout_clips_per_identity, seed=2, voices=HELDOUT_VOICES),
    }
    for name, world in worlds.items():
        synth_dataset(world, urls[name], runtime=cfg.runtime, console=console, show_progress=False)
        manifest = read_manifest(urls[name])
        info = manifest.info
        console.print(f"  {name:<8} {manifest.num_samples:3d} samples in {len(manifest.shards)} shards, "
                      f"{manifest.num_bytes / 2**20:6.1f} MiB, {len(info.get('speakers', []))} speakers, "
                      f"{info.get('hours', 0) * 60:.1f} min of speech, video={'yes' if world.video else 'no'} "
                      f"→ {manifest.url}", highlight=False)
    sheet = storage.join(out, "data", "contact_sheet.png")
    _contact_sheet(urls["clips"], sheet)
    console.print(f"  contact sheet of rendered clips (mouth closed | open, one row per identity): {sheet} "
                  f"({time.perf_counter() - t:.1f}s)", highlight=False)
    return urls


def _contact_sheet(dataset_url: str, sheet_url: str, rows: int = 4) -> None:
    """Per identity, the frames of its first clip with the jaw most closed and most open."""
    import tempfile

    import numpy as np

    from datasets.loader import iter_samples
    from datasets.media import read_video
    from render.video import side_by_side, write_png

    seen, sheet_rows = set(), []
    for sample in iter_samples(dataset_url):
        speaker = sample.meta["speaker"]
        if speaker in seen or sample.mp4 is None or sample.mm is None:
            continue
        seen.add(speaker)
        with tempfile.NamedTemporaryFile(suffix=".mp4") as f:
            f.write(sample.mp4)
            f.flush()
            frames = read_video(f.name)
        jaw = sample.mm["jaw"][: len(frames), 0]
        sheet_rows.append([frames[int(np.argmin(jaw))], frames[int(np.argmax(jaw))]])
        if len(sheet_rows) == rows:
            break
    write_png(sheet_url, side_by_side(sheet_rows))


def pretrain_step(cfg: ReplicaConfig, out: str, console: Console, data: dict[str, str]) -> None:
    """Pre-train the tiny audio encoder, then the animator on it (fine-tuning the encoder), and print both
    evaluations."""
    from cluster.pretrain import pretrain
    from foundation.evaluation import evaluate_run

    for kind in ("audio", "animator"):
        t = _step(console, f"{'4' if kind == 'audio' else '5'}. pre-train the {kind} model (Ray Train + DeepSpeed, "
                  f"{cfg.train.num_workers} workers, ZeRO-{cfg.train.zero_stage})")
        run = storage.join(out, kind)
        encoder = storage.join(out, "audio", "model.pt") if kind == "animator" else None
        run_cfg = cfg
        if kind == "animator":  # lip shapes take longer to learn than voices: twice the steps, a higher peak LR
            run_cfg = cfg.model_copy(update={"train": cfg.train.model_copy(
                update={"steps": 2 * cfg.train.steps, "lr": 1.5 * cfg.train.lr})})
        summary = pretrain(kind, run_cfg, data["train"], run, eval_url=data["heldout"], init_from=encoder)
        metrics = summary["final_metrics"]
        report = evaluate_run(kind, run, data["heldout"], train_url=data["train"])
        console.print(f"  {metrics['step']} steps, final loss {metrics['loss']:.3f}, "
                      f"{metrics['samples_per_s']:.0f} samples/s; run folder {run}", highlight=False)
        if kind == "audio":
            low, high = report["eer_minus_resemblyzer_ci95"]
            console.print(f"  speaker verification on {report['speakers']} held-out speakers (voices unseen in "
                          f"training), {report['trials']} trials: EER ours {report['eer']:.3f} · resemblyzer "
                          f"(pretrained GE2E) {report['eer_resemblyzer']:.3f}; ours − resemblyzer within "
                          f"[{low:+.3f}, {high:+.3f}] (95 %, over trials)", highlight=False)
        else:
            for model in ("animator", "energy_jaw", "mean_face", "phones_known"):
                if f"lve_mm/{model}" in report:
                    console.print(f"  {model:<12} lip vertex error {report[f'lve_mm/{model}']:6.2f} mm · mean vertex "
                                  f"error {report[f'mve_mm/{model}']:5.2f} mm", highlight=False)
            if "lve_mm/phones_known" in report:
                console.print("  (phones_known: the world's mouth for the exact phones at an average speaker's style "
                              "— the floor, not a competitor)", highlight=False)
        console.print(f"  ({time.perf_counter() - t:.1f}s)")


def person_step(cfg: ReplicaConfig, out: str, console: Console) -> tuple[str, str]:
    """Render one synthetic person talking (the input replica creation expects); returns (video, params)."""
    from foundation.world import synth_person

    t = _step(console, "6. a synthetic person video (H.264 + AAC) with its exact parameters")
    video = storage.join(out, "person", "person.mp4")
    info = synth_person(cfg.demo.person_seconds, video, with_options(cfg.synth, "synth", seed=3, photo_probability=0.0))
    console.print(f"  {info['identity']} ({info['voice']}): {info['frames']} frames, {info['seconds']}s → {video}, "
                  f"{info['params']} ({time.perf_counter() - t:.1f}s)", highlight=False)
    return video, info["params"]


def video_step(cfg: ReplicaConfig, out: str, console: Console, avatar_url: str, person_video: str,
               person_params: str) -> str:
    """Render the avatar for every frame of the person's parameters, with the person's voice; returns the mp4's URL."""
    from launch.avatar_cli import render_avatar

    t = _step(console, "8. video: the avatar driven by the person's parameters + voice → mp4")
    video_url = storage.join(out, "video", "avatar.mp4")
    n_frames, fps, refined = render_avatar(cfg, avatar_url, person_params, video_url, audio_url=person_video)
    console.print(f"  {n_frames} frames ({n_frames / fps:.1f}s{', refined' if refined else ''}, H.264 + AAC) → "
                  f"{video_url} ({time.perf_counter() - t:.1f}s)", highlight=False)
    return video_url


def create_step(cfg: ReplicaConfig, out: str, console: Console, person_video: str) -> str:
    """`replica create` from the person's video alone (tracked parameters, not the true ones), fine-tuning the
    animator pre-trained in step 5; prints the tracking numbers, the voice ranking's top 3, the fine-tune's
    before/after LVE and what tracking costs the avatar (held-out PSNR, tracked vs true parameters: the bundle's
    metrics, as `replica create` prints them)."""
    from cluster.create import CreateSettings, create_replica

    t = _step(console, "9. replica create: the person's video alone → ingest → tracking → voice → fine-tune "
                       "(Ray Tune) → avatar (a bundle)")
    bundle = storage.join(out, "replicas", "person")
    settings = CreateSettings.of(cfg)
    if not settings.finetune.foundation:
        settings = replace(settings, finetune=settings.finetune.model_copy(
            update={"foundation": storage.join(out, "animator", "model.pt")}))
    create_replica(person_video, bundle, settings, runtime=cfg.runtime, console=console)  # prints its quality
    console.print(f"  bundle {bundle} (replica.json, tracking sheet {storage.join(bundle, 'track', 'sheet.png')}, "
                  f"voice ranking {storage.join(bundle, 'voice', 'voice.json')}) "
                  f"({time.perf_counter() - t:.1f}s)", highlight=False)
    return bundle


def render_step(cfg: ReplicaConfig, out: str, console: Console, bundle: str) -> str:
    """The demo replica says a sentence it never heard (text → TTS → face → video), streaming; prints the
    pipeline's real-time factor and writes a contact sheet of the frames read back from the mp4."""
    from cluster.runtime import resolve
    from datasets.media import read_video
    from render.pipeline import load_replica, render_to_url
    from render.video import side_by_side, write_png

    t = _step(console, "10. replica render: the replica says a new sentence (text → speech → face → video)")
    resolved = resolve(cfg.runtime)
    replica = load_replica(bundle, device=resolved.device, backend=resolved.renderer)
    video_url = storage.join(out, "render", "new_sentence.mp4")
    report = render_to_url(video_url, replica, text="Hello! I am a replica, and this is a sentence I have never "
                                                    "said before.", options=cfg.render,
                           export_params=storage.join(out, "render", "new_sentence.params.json"))
    frames = read_video(video_url)
    picks = np.linspace(0, len(frames) - 1, 8).round().astype(int)
    sheet_url = storage.join(out, "render", "new_sentence.png")
    write_png(sheet_url, side_by_side([list(frames[picks])], scale=2))
    console.print(f"  voice {replica.voice}; {report['video_s']:.1f}s of video in {report['wall_s']:.1f}s: "
                  f"real-time factor {report['realtime_factor']:.2f}, first chunk after {report['first_chunk_s']:.2f}s",
                  highlight=False)
    console.print(f"  mp4 {video_url}, frames {sheet_url}, ARKit curves {video_url[:-4]}.params.json "
                  f"({time.perf_counter() - t:.1f}s)", highlight=False)
    return video_url


def serve_step(cfg: ReplicaConfig, out: str, console: Console, bundle: str) -> str:
    """Start the Ray Serve app briefly on a free local port, request one video over HTTP, save it, stop."""
    from launch.serve_cli import serve_once

    t = _step(console, "11. replica serve: the HTTP API on Ray Serve renders one video on request")
    cfg = cfg.model_copy(update={"serve": cfg.serve.model_copy(update={"jobs": storage.join(out, "serve", "jobs")})})
    video_url = storage.join(out, "serve", "hello.mp4")
    result = serve_once(cfg, bundle, "Thanks for asking. I am served over HTTP.", video_url)
    console.print(f"  POST /v1/videos on port {result['port']} → job {result['job']}: {result['frames']} frames "
                  f"({result['seconds']:.1f}s of video) in {result['request_s']:.1f}s; saved {video_url} "
                  f"({time.perf_counter() - t:.1f}s)", highlight=False)
    return video_url


def run_demo(cfg: ReplicaConfig, out: str, console: Console) -> None:
    """Run every demo step, writing under `out`."""
    from launch.doctor import run_checks, verdict

    started = time.perf_counter()
    t = _step(console, "1. doctor")
    checks = run_checks(cfg)
    for check in checks:
        if check.status != "ok" or check.name in ("device", "renderer", "ray address", "storage"):
            console.print(f"  {check.status:<4} {check.name:<16} {check.detail}", highlight=False)
    console.print(f"  verdict: {verdict(checks)} ({time.perf_counter() - t:.1f}s)")

    t = _step(console, "2. storage round-trip")
    probe = storage.join(out, "storage-check.bin")
    payload = bytes(range(256)) * 4096
    storage.write_bytes(probe, payload)
    assert storage.read_bytes(probe) == payload, "storage round-trip returned different bytes"
    listed = storage.list_urls(out)
    storage.remove(probe)
    config_url = save_config(cfg, out)
    console.print(f"  wrote, listed ({len(listed)} objects), read back and removed {len(payload) / 2**20:.1f} MiB "
                  f"at {out}; config saved to {config_url} ({time.perf_counter() - t:.1f}s)")

    data = data_step(cfg, out, console)
    pretrain_step(cfg, out, console, data)
    video, params = person_step(cfg, out, console)
    avatar = avatar_step(cfg, out, console, video, params)
    video_step(cfg, out, console, avatar, video, params)
    bundle = create_step(cfg, out, console, video)
    render_step(cfg, out, console, bundle)
    serve_step(cfg, out, console, bundle)

    console.rule("[bold green]demo done")
    console.print(f"  total {time.perf_counter() - started:.1f}s; outputs under {out}")
