import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import tf_cyclegan as tc
from tf_cyclegan.cli import main
from tf_cyclegan.torch_import.checkpoint import CheckpointError
from tf_cyclegan.torch_import.load import find_cyclegan_files

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "torch")
OUTPUTS = np.load(os.path.join(FIXTURES, "outputs.npz"))


def checkpoint_folder(folder, epoch="latest", g_b="gen_affine.pth", d_b="disc_legacy_format.pth", g_a="gen.pth",
                      d_a="disc.pth"):
    """A reference checkpoint folder made of the fixtures: G_A, G_B, D_A, D_B."""
    os.makedirs(folder, exist_ok=True)
    for net, source in (("G_A", g_a), ("G_B", g_b), ("D_A", d_a), ("D_B", d_b)):
        shutil.copy(os.path.join(FIXTURES, source), os.path.join(folder, f"{epoch}_net_{net}.pth"))
    return folder


def _one_step_sets(demo_root, *model_sets):
    """`train --set` assignments for a one-step run on the demo data with these model keys."""
    return [f"data.root={demo_root}", "data.load_size=32", "data.crop_size=32", *model_sets, "train.epochs=1",
            "train.epochs_decay=0", "train.steps_per_epoch=1", "train.verbose=0", "eval.every_n_epochs=0",
            "checkpoint.every_n_epochs=0"]


def test_load_torch_generator_is_public_and_computes_what_pytorch_computed():
    generator = tc.load_torch_generator(os.path.join(FIXTURES, "gen.pth"))
    ours = generator(OUTPUTS["input_oblong"]).numpy()
    assert np.abs(ours - OUTPUTS["gen_oblong"]).max() <= 1e-5


def test_load_torch_cyclegan_maps_the_reference_names_to_ours(tmp_path):
    model = tc.load_torch_cyclegan(checkpoint_folder(tmp_path / "ckpt"))
    assert isinstance(model, tc.CycleGAN)
    x = OUTPUTS["input_square"]
    # G_A translates A to B; D_A judges B images (the reference's convention).
    assert np.abs(model.gen_a2b(x).numpy() - OUTPUTS["gen_square"]).max() <= 1e-5
    assert np.abs(model.gen_b2a(x).numpy() - OUTPUTS["gen_affine_square"]).max() <= 1e-5
    assert np.abs(model.disc_b(x).numpy() - OUTPUTS["disc_square"]).max() <= 1e-5
    assert np.abs(model.disc_a(x).numpy() - OUTPUTS["disc_square"]).max() <= 1e-5
    assert [model.gen_a2b.name, model.gen_b2a.name, model.disc_a.name, model.disc_b.name] == [
        "gen_a2b", "gen_b2a", "disc_a", "disc_b"]


def test_a_folder_gives_its_latest_checkpoint_else_its_highest_epoch(tmp_path):
    folder = checkpoint_folder(tmp_path / "ckpt", epoch="5")
    checkpoint_folder(folder, epoch="20")
    checkpoint_folder(folder, epoch="100")
    assert os.path.basename(find_cyclegan_files(folder)["G_A"]) == "100_net_G_A.pth"
    checkpoint_folder(folder, epoch="latest")
    assert os.path.basename(find_cyclegan_files(folder)["D_B"]) == "latest_net_D_B.pth"


def test_a_cyclegan_needs_its_four_networks(tmp_path):
    folder = checkpoint_folder(tmp_path / "ckpt")
    os.remove(os.path.join(folder, "latest_net_D_B.pth"))
    with pytest.raises(CheckpointError, match="no complete set.*latest_net_D_A.pth"):
        tc.load_torch_cyclegan(folder)
    files = [os.path.join(folder, name) for name in sorted(os.listdir(folder))]
    with pytest.raises(CheckpointError, match="missing: D_B"):
        tc.load_torch_cyclegan(files)
    with pytest.raises(CheckpointError, match="cannot tell which network"):
        tc.load_torch_cyclegan(files + [os.path.join(FIXTURES, "gen.pth")])


def test_a_file_that_is_not_a_generator_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"disc\.pth.*PatchGAN discriminator.*not a ResNet generator"):
        tc.load_torch_generator(os.path.join(FIXTURES, "disc.pth"))


def test_import_torch_writes_a_generator_that_translate_takes(tmp_path, capsys):
    out = tmp_path / "horse2zebra.keras"
    assert main(["import-torch", os.path.join(FIXTURES, "gen.pth"), "--out", str(out)]) == 0
    assert "a generator" in capsys.readouterr().out
    from tf_cyclegan.inference.loading import load_translator

    translated = load_translator(str(out), "a2b").translate(OUTPUTS["input_square"][0])
    assert np.abs(translated - OUTPUTS["gen_square"][0]).max() <= 1e-5
    # An existing file is never replaced unasked.
    before = out.read_bytes()
    assert main(["import-torch", os.path.join(FIXTURES, "gen.pth"), "--out", str(out)]) == 2
    assert "exists already" in capsys.readouterr().err
    assert out.read_bytes() == before
    assert main(["import-torch", os.path.join(FIXTURES, "gen.pth"), "--out", str(tmp_path / "model.h5")]) == 2
    assert "must name a .keras file" in capsys.readouterr().err


def test_import_torch_of_a_checkpoint_folder_writes_a_cyclegan(tmp_path, capsys):
    out = tmp_path / "cyclegan.keras"
    assert main(["import-torch", checkpoint_folder(str(tmp_path / "ckpt")), "--out", str(out)]) == 0
    import keras

    model = keras.saving.load_model(out)
    assert isinstance(model, tc.CycleGAN)
    assert np.abs(model.gen_b2a(OUTPUTS["input_square"]).numpy() - OUTPUTS["gen_affine_square"]).max() <= 1e-5


def test_import_torch_refuses_a_malicious_file_in_one_line(tmp_path, capsys):
    evil = tmp_path / "latest_net_G.pth"
    evil.write_bytes(b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00echo\x85R.")  # os.system("echo")
    assert main(["import-torch", str(evil), "--out", str(tmp_path / "g.keras")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "latest_net_G.pth" in err[0] and ".system" in err[0]
    assert not (tmp_path / "g.keras").exists()


@pytest.mark.slow
def test_export_takes_a_single_generator_as_one_direction(tmp_path):
    model = tmp_path / "g.keras"
    assert main(["import-torch", os.path.join(FIXTURES, "gen.pth"), "--out", str(model)]) == 0
    assert main(["export", str(model), "--out", str(tmp_path / "export"), "--formats", "savedmodel"]) == 0
    assert sorted(os.listdir(tmp_path / "export")) == ["a2b"]
    meta = json.loads((tmp_path / "export" / "a2b" / "metadata.json").read_text())
    assert meta["direction"] == "a2b" and meta["alignment"] == "reference"
    from tf_cyclegan.inference.loading import load_translator

    translated = load_translator(str(tmp_path / "export"), "a2b").translate(OUTPUTS["input_square"][0])
    assert np.abs(translated - OUTPUTS["gen_square"][0]).max() <= 1e-5
    assert main(["export", str(model), "--out", str(tmp_path / "export_b"), "--formats", "savedmodel",
                 "--directions", "b2a"]) == 0
    assert sorted(os.listdir(tmp_path / "export_b")) == ["b2a"]


@pytest.mark.slow
def test_train_init_from_starts_a_run_from_an_imported_cyclegan(tmp_path, demo_root, caplog, capsys):
    model = tmp_path / "cyclegan.keras"
    # All four with learned norm scales and offsets: the config says so with model.norm_affine.
    folder = checkpoint_folder(str(tmp_path / "ckpt"), g_a="gen_affine.pth", g_b="gen_affine.pth",
                               d_a="disc_affine.pth", d_b="disc_affine.pth")
    assert main(["import-torch", folder, "--out", str(model)]) == 0
    sets = _one_step_sets(demo_root, "model.filters=8", "model.num_residual_blocks=2", "model.disc_filters=8",
                          "model.norm_affine=true")
    with caplog.at_level("INFO"):
        assert main(["train", "--run-dir", str(tmp_path / "run"), "--init-from", str(model), "--set", *sets]) == 0
    assert "optimizers start fresh" in caplog.text
    import yaml

    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["train"]["init_from"] == str(model) and config["model"]["alignment"] == "reference"
    # A config whose networks do not have the imported ones' shapes stops before training.
    wrong = [s for s in sets if not s.startswith("model.filters")] + ["model.filters=4"]
    assert main(["train", "--run-dir", str(tmp_path / "run2"), "--init-from", str(model), "--set", *wrong]) == 2
    assert "model.norm_affine" in capsys.readouterr().err


LAYOUTS = os.path.join(os.path.dirname(__file__), "..", "fixtures", "torch_layouts")
LAYOUT_OUTPUTS = np.load(os.path.join(LAYOUTS, "outputs.npz"))


def cut_folder(folder, epoch="latest", options=None):
    """An official CUT checkpoint folder made of the fixtures: G, D, F (and train_opt.txt)."""
    os.makedirs(folder, exist_ok=True)
    for net in ("G", "D", "F"):
        shutil.copy(os.path.join(LAYOUTS, "cut_run", f"latest_net_{net}.pth"), os.path.join(folder,
                                                                                            f"{epoch}_net_{net}.pth"))
    if options:  # as BaseOptions.print_options writes it
        lines = ["----------------- Options ---------------"]
        lines += [f"{key:>25}: {value:<30}" for key, value in options.items()]
        (Path(folder) / "train_opt.txt").write_text("\n".join(lines + ["----------------- End -------------------"]))
    return folder


def test_load_torch_generator_reads_a_renamed_generator_and_logs_what_it_assumed(caplog):
    with caplog.at_level("INFO"):
        generator = tc.load_torch_generator(os.path.join(LAYOUTS, "block_affine.pth"))
    assert "block_affine.pth read as a ResNet generator of 4 filters, 2 residual block(s)" in caplog.text
    assert "stride 2 with zero padding 1" in caplog.text and "taking each pair in the file's order" in caplog.text
    assert np.abs(generator(LAYOUT_OUTPUTS["input_square"]).numpy() - LAYOUT_OUTPUTS["block_affine_square"]).max() \
        <= 1e-5


def test_load_torch_generator_gives_the_official_cut_generator_as_ours():
    generator = tc.load_torch_generator(os.path.join(LAYOUTS, "cut_run", "latest_net_G.pth"))
    assert "down1_blur" in [layer.name for layer in generator.layers] and generator.name == "gen_a2b"
    assert np.abs(generator(LAYOUT_OUTPUTS["input_oblong"]).numpy() - LAYOUT_OUTPUTS["cut_G_oblong"]).max() <= 1e-4


def test_load_torch_cut_builds_a_cut_model_of_the_three_networks(tmp_path, caplog):
    from tf_cyclegan.models.cut import CUT
    from tf_cyclegan.torch_import.load import load_torch_cut

    with caplog.at_level("INFO"):
        model = load_torch_cut(cut_folder(tmp_path / "run"))
    assert isinstance(model, CUT) and model.nce_identity and not model.flip_equivariance  # CUT, the default
    assert "no train_opt.txt" in caplog.text
    x = LAYOUT_OUTPUTS["input_square"]
    assert np.abs(model.generator(x).numpy() - LAYOUT_OUTPUTS["cut_G_square"]).max() <= 1e-4
    assert np.abs(model.discriminator(x).numpy() - LAYOUT_OUTPUTS["cut_D_square"]).max() <= 1e-4
    sampled = model.feature_head(model.encoder(x), [LAYOUT_OUTPUTS[f"cut_F_ids_{i}"] for i in range(5)])
    assert np.abs(sampled[4].numpy() - LAYOUT_OUTPUTS["cut_F_4"]).max() <= 1e-4


def test_load_torch_cut_takes_the_runs_options_from_its_train_opt(tmp_path):
    from tf_cyclegan.torch_import.load import load_torch_cut

    options = {"CUT_mode": "FastCUT", "lambda_NCE": "10.0", "nce_idt": "False", "flip_equivariance": "True",
               "nce_layers": "0,4,8,12,16", "num_patches": "128", "nce_T": "0.07", "name": "horse2zebra_fastcut"}
    model = load_torch_cut(cut_folder(tmp_path / "run", options=options))
    assert (model.flip_equivariance, model.nce_identity) == (True, False)
    assert (model.lambda_nce, model.num_patches) == (10.0, 128)
    as_cut = load_torch_cut(os.path.join(tmp_path, "run"), mode="cut")  # the mode's defaults, not the run's
    assert (as_cut.nce_identity, as_cut.flip_equivariance, as_cut.lambda_nce, as_cut.num_patches) == (
        True, False, 1.0, 256)
    options["nce_layers"] = "0,2,4"
    with pytest.raises(CheckpointError, match="--nce_layers 0,2,4; only the official 0,4,8,12,16"):
        load_torch_cut(cut_folder(tmp_path / "other", options=options))


def test_a_cut_folder_needs_its_three_networks_and_a_cut_generator(tmp_path):
    from tf_cyclegan.torch_import.load import checkpoint_kind, load_torch_cut

    folder = cut_folder(tmp_path / "run")
    assert checkpoint_kind(str(folder)) == "cut"
    assert checkpoint_kind(checkpoint_folder(tmp_path / "cyclegan")) == "cyclegan"
    os.remove(os.path.join(folder, "latest_net_F.pth"))
    with pytest.raises(CheckpointError, match="no complete set of the official CUT's checkpoint files"):
        load_torch_cut(folder)
    shutil.copy(os.path.join(FIXTURES, "gen.pth"), os.path.join(folder, "latest_net_G.pth"))
    shutil.copy(os.path.join(LAYOUTS, "cut_run", "latest_net_F.pth"), os.path.join(folder, "latest_net_F.pth"))
    with pytest.raises(CheckpointError, match="holds a CycleGAN generator, not the official CUT's"):
        load_torch_cut(folder)
    with pytest.raises(CheckpointError, match="no checkpoint files of the reference's CycleGAN.*nor of the official"):
        checkpoint_kind(str(tmp_path))


def test_import_torch_of_a_cut_folder_writes_a_cut_model(tmp_path, capsys):
    import keras

    from tf_cyclegan.models.cut import CUT

    out = tmp_path / "cut.keras"
    assert main(["import-torch", cut_folder(str(tmp_path / "run")), "--out", str(out)]) == 0
    assert "a CUT model (G -> generator" in capsys.readouterr().out
    model = keras.saving.load_model(out)
    assert isinstance(model, CUT)
    x = LAYOUT_OUTPUTS["input_oblong"]
    assert np.abs(model.generator(x).numpy() - LAYOUT_OUTPUTS["cut_G_oblong"]).max() <= 1e-4


def test_import_torch_says_in_one_line_what_a_file_that_is_no_generator_holds(tmp_path, capsys):
    for path, holds in ((os.path.join(LAYOUTS, "cut_run", "latest_net_F.pth"), "a feature head of 5 two-layer MLP"),
                        (os.path.join(LAYOUTS, "cut_run", "latest_net_D.pth"), "anti-aliased downsampling (CUT's)")):
        assert main(["import-torch", path, "--out", str(tmp_path / "g.keras")]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and holds in err[0] and "not a ResNet generator" in err[0]
    assert not (tmp_path / "g.keras").exists()


@pytest.mark.slow
def test_a_cut_generator_goes_from_pth_to_tflite_in_two_commands(tmp_path):
    model = tmp_path / "horse2zebra_cut.keras"
    assert main(["import-torch", os.path.join(LAYOUTS, "cut_run", "latest_net_G.pth"), "--out", str(model)]) == 0
    assert main(["export", str(model), "--out", str(tmp_path / "export"), "--formats", "tflite",
                 "--tflite-size", "32"]) == 0
    from tf_cyclegan.inference.loading import load_translator

    tflite = os.path.join(tmp_path, "export", "a2b", "generator_float32.tflite")
    translated = load_translator(tflite, "a2b").translate(LAYOUT_OUTPUTS["input_square"][0])
    assert np.abs(translated - LAYOUT_OUTPUTS["cut_G_square"][0]).max() <= 1e-4


@pytest.mark.slow
def test_train_init_from_continues_an_imported_cut_run(tmp_path, demo_root, caplog):
    model = tmp_path / "cut.keras"
    assert main(["import-torch", cut_folder(str(tmp_path / "run")), "--out", str(model)]) == 0
    sets = _one_step_sets(demo_root, "model.kind=cut", "model.filters=4", "model.num_residual_blocks=5",
                          "model.disc_filters=4", "model.head_units=16")
    with caplog.at_level("INFO"):
        assert main(["train", "--run-dir", str(tmp_path / "train"), "--init-from", str(model), "--set", *sets]) == 0
    assert "Started the networks (generator, discriminator, feature_head)" in caplog.text
    assert "the optimizers start fresh" in caplog.text
