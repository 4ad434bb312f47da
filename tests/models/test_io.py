"""Model folders and state files that are damaged or do not fit say so in one line naming the file."""

import json

import pytest
import torch

from infini_attention import InfiniTransformer, ModelConfig, ModelState
from infini_attention.models.io import load_model, save_model
from infini_attention.safe_files import load_checked, save_checked


@pytest.fixture
def folder(tmp_path):
    save_model(InfiniTransformer(ModelConfig.from_name("tiny", segment_len=16)), tmp_path)
    return tmp_path


def test_a_flipped_byte_truncation_or_nan_is_caught(folder):
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0x01  # one bit of a weight
    weights.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"model.safetensors is corrupted: its tensors do not match the checksum"):
        load_model(folder)
    weights.write_bytes(bytes(data[: len(data) // 2]))
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_model(folder)
    weights.write_bytes(b"")
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        load_model(folder)
    tensors = dict(InfiniTransformer(ModelConfig.from_name("tiny", segment_len=16)).state_dict())
    tensors["norm.weight"] = tensors["norm.weight"].clone()
    tensors["norm.weight"][0] = float("nan")
    save_checked(tensors, weights)  # a valid checksum over a NaN: a diverged run saved
    with pytest.raises(ValueError, match="non-finite values in norm.weight"):
        load_model(folder)


def test_a_config_that_does_not_fit_or_parse(folder, capsys):
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hidden_size": 96}))
    with pytest.raises(ValueError, match=r"does not fit .*config.json: size mismatch"):
        load_model(folder)
    (folder / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"config.json is not valid JSON"):
        load_model(folder)
    (folder / "config.json").write_text(json.dumps({**config, "segment_lenght": 8}))
    load_model(folder)
    assert "unknown keys segment_lenght (did you mean segment_len?)" in capsys.readouterr().err
    (folder / "config.json").write_text(json.dumps({**config, "num_layers": "two"}))
    with pytest.raises(ValueError, match="config.json"):
        load_model(folder)


def test_state_files_carry_a_checksum_and_their_model(tmp_path):
    model = InfiniTransformer(ModelConfig.from_name("tiny", segment_len=16))
    _, state = model(torch.randint(0, 256, (1, 40)))
    state.save(tmp_path / "s.safetensors")
    _, metadata = load_checked(tmp_path / "s.safetensors")
    assert "sha256" in metadata and json.loads(metadata["model"])["rule"] == "linear"
    loaded = ModelState.load(tmp_path / "s.safetensors")
    assert loaded.model == state.model and loaded.position == 40
    delta = InfiniTransformer(ModelConfig.from_name("tiny", segment_len=16, rule="delta"))
    with pytest.raises(ValueError, match="another kind of model: rule 'linear' .this model: 'delta'"):
        delta(torch.ones(1, 1).long(), loaded)
    data = bytearray((tmp_path / "s.safetensors").read_bytes())
    data[-8] ^= 0x40
    (tmp_path / "s.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="s.safetensors is corrupted"):
        ModelState.load(tmp_path / "s.safetensors")


def test_a_run_folder_loads_as_its_checkpoint(tmp_path):
    model = InfiniTransformer(ModelConfig.from_name("tiny", segment_len=16))
    save_model(model, tmp_path / "run" / "checkpoint")
    loaded = load_model(tmp_path / "run")  # infini train's --out, as well as --out/checkpoint
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), model.state_dict().values()))
