"""Speed and memory settings: what each switch does on which device, how users set them, and that the
prepared UNet and VAE compute what the plain ones do."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from depthgraph.engine.app.cli import main
from depthgraph.engine.app.config import ConfigError, load_settings
from depthgraph.engine.models.acceleration import (
    Acceleration,
    AccelerationError,
    Plan,
    prepare_unet,
    prepare_vae,
    tiling_for,
)
from depthgraph.engine.models.residency import module_bytes
from depthgraph.engine.models.tiny import build_tiny
from depthgraph.engine.models.unet_runner import UNetRunner


def test_auto_turns_every_speed_up_on_for_cuda_and_off_for_the_cpu() -> None:
    cuda = Acceleration().resolve("cuda")
    assert (cuda.compile, cuda.cuda_graphs, cuda.channels_last, cuda.fuse_qkv) == (True, True, True, True)
    cpu = Acceleration().resolve("cpu")
    assert (cpu.compile, cpu.cuda_graphs, cpu.channels_last, cpu.fuse_qkv) == (False, False, False, False)
    assert cuda.vae_tiling and cuda.tile_pixels == 768 and cuda.vram_budget is None


def test_low_memory_offloads_tiles_small_and_neither_compiles_nor_records_graphs() -> None:
    plan = Acceleration(low_memory=True, compile="on", cuda_graphs="on").resolve("cuda")
    assert plan.offload and plan.tile_pixels == 512
    assert not plan.compile and not plan.cuda_graphs
    assert "low memory" in plan.describe()


def test_compile_modes_that_record_graphs_themselves_turn_ours_off() -> None:
    assert not Acceleration(compile_mode="reduce-overhead").resolve("cuda").cuda_graphs
    assert Acceleration(compile_mode="max-autotune-no-cudagraphs").resolve("cuda").cuda_graphs
    assert Acceleration(compile="off").resolve("cuda").cuda_graphs  # graphs work without compiling


def test_a_wrong_switch_value_names_the_setting_and_the_choices() -> None:
    expected = r"acceleration.compile is 'yes'; choose one of auto, on, off"
    with pytest.raises(AccelerationError, match=expected):
        Acceleration(compile="yes")
    with pytest.raises(AccelerationError, match="compile_mode"):
        Acceleration(compile_mode="fastest")


def test_the_config_file_sets_acceleration_with_yaml_on_off_and_sizes(tmp_path: Path) -> None:
    config = tmp_path / "depthgraph.yaml"
    config.write_text("acceleration:\n  compile: off\n  cuda_graphs: on\n  vram_budget: 6GiB\n")
    acceleration = load_settings(config).acceleration
    assert acceleration.compile == "off" and acceleration.cuda_graphs == "on"
    assert acceleration.vram_budget == 6 * 2**30


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("acceleration:\n  compile: sometimes\n", "acceleration.compile is 'sometimes'"),
        ("acceleration:\n  turbo: on\n", "unknown acceleration setting 'turbo'"),
        ("acceleration:\n  vram_budget: lots\n", "acceleration.vram_budget 'lots' is not a size"),
        ("acceleration:\n  low_memory: maybe\n", "low_memory must be true or false"),
        ("acceleration: fast\n", "acceleration maps a setting"),
    ],
)
def test_a_bad_acceleration_setting_is_refused_with_its_name(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "depthgraph.yaml"
    config.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_settings(config)


def test_the_command_line_switches_reach_the_engine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from depthgraph.engine.app.cli import entry as cli

    seen = []
    monkeypatch.setattr(cli, "build_engine", lambda settings, files: seen.append(settings) or _stop())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DEPTHGRAPH_HOME", str(tmp_path))
    graph = Path(__file__).resolve().parents[2] / "graphs" / "depth2img.json"
    with pytest.raises(_Stopped):
        main(["run", str(graph), "--no-compile", "--low-memory", "--vram-budget", "3GiB"])
    chosen = seen[0].acceleration
    assert (chosen.compile, chosen.low_memory, chosen.vram_budget) == ("off", True, 3 * 2**30)
    with pytest.raises(_Stopped):
        main(["run", str(graph)])
    assert seen[-1].acceleration.compile == "off"  # one run does not pay for compiling by default
    with pytest.raises(_Stopped):
        main(["run", str(graph), "--compile"])
    assert seen[-1].acceleration.compile == "on"

    with pytest.raises(SystemExit) as stopped:
        main(["run", str(graph), "--vram-budget", "a lot"])
    assert stopped.value.code == 2
    assert "--vram-budget 'a lot' is not a size" in capsys.readouterr().err


class _Stopped(Exception):
    pass


def _stop() -> None:
    raise _Stopped


def test_a_prepared_unet_predicts_what_the_plain_one_does() -> None:
    plain = build_tiny("unet")
    prepared = prepare_unet(build_tiny("unet"), Plan(fuse_qkv=True, channels_last=True))
    sample = torch.randn(2, 5, 16, 16, generator=torch.Generator().manual_seed(0))
    embeddings = torch.randn(2, 77, 32, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        expected = plain(sample, 981, encoder_hidden_states=embeddings).sample
        got = UNetRunner(prepared)(sample.contiguous(memory_format=torch.channels_last), 981, embeddings)
    assert torch.allclose(got, expected, atol=1e-5)
    assert prepared.conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert any("Fused" in type(processor).__name__ for processor in prepared.attn_processors.values())
    # Fusing holds no weight twice: the separate projections the fused attention skips are gone.
    assert module_bytes(prepared) == module_bytes(plain)


def test_a_prepared_vae_decodes_what_the_plain_one_does() -> None:
    plain = build_tiny("vae")
    prepared = prepare_vae(build_tiny("vae"), Plan(fuse_qkv=True, channels_last=True))
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        assert torch.allclose(prepared.decode(latents).sample, plain.decode(latents).sample, atol=1e-5)
    assert module_bytes(prepared) == module_bytes(plain)


def test_the_vae_tiles_only_images_larger_than_one_tile() -> None:
    vae = build_tiny("vae")
    plan = Plan(vae_tiling=True, tile_pixels=64)
    assert not tiling_for(vae, plan, (64, 64)) and not vae.use_tiling
    assert tiling_for(vae, plan, (64, 128)) and vae.use_tiling
    assert (vae.tile_sample_min_size, vae.tile_latent_min_size) == (64, 8)
    assert not tiling_for(vae, Plan(vae_tiling=False, tile_pixels=64), (512, 512)) and not vae.use_tiling


@pytest.mark.gpu
def test_a_recorded_cuda_graph_predicts_what_the_eager_unet_does() -> None:
    unet = build_tiny("unet").to("cuda", torch.float16)
    eager, graphed = UNetRunner(unet), UNetRunner(unet, cuda_graphs=True)
    embeddings = torch.randn(2, 77, 32, device="cuda", dtype=torch.float16)
    with torch.inference_mode():
        for timestep in (981, 961, 941):
            sample = torch.randn(2, 5, 16, 16, device="cuda", dtype=torch.float16)
            step = torch.tensor(timestep, device="cuda")
            expected = eager(sample, step, embeddings)
            assert torch.allclose(graphed(sample, step, embeddings), expected, atol=1e-3)
        assert graphed.recordings == 1  # one shape, one recording, replayed for every step
        batch_of_four = torch.randn(4, 5, 16, 16, device="cuda", dtype=torch.float16)
        graphed(batch_of_four, step, embeddings.repeat(2, 1, 1))
        assert graphed.recordings == 2
        unet.to("cpu").to("cuda")  # weights moved: the old recording would read freed memory
        graphed(sample, step, embeddings)
        assert graphed.recordings == 3


def test_compiled_kernels_are_kept_in_the_data_folder_unless_the_user_chose_a_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from depthgraph.engine.models import acceleration

    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/somewhere/torch/chose")  # torch's own default
    monkeypatch.setattr(acceleration, "_USER_COMPILE_CACHE", None)
    acceleration.use_compile_cache(tmp_path / "compile-cache")
    assert Path(os.environ["TORCHINDUCTOR_CACHE_DIR"]) == (tmp_path / "compile-cache").resolve()
    assert (tmp_path / "compile-cache").is_dir()

    monkeypatch.setattr(acceleration, "_USER_COMPILE_CACHE", "/fast/disk/kernels")
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/fast/disk/kernels")
    acceleration.use_compile_cache(tmp_path / "other")
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == "/fast/disk/kernels"
