"""A device this machine does not have: a clear error naming it and the devices there are, before any work."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from genrec.cli import app
from genrec.config import ConfigError
from genrec.devices import DeviceUnavailableError, available_devices, check_device_available
from genrec.encoders.base import EncoderConfig
from genrec.generators.diffusion import ImageGeneratorConfig
from genrec.generators.text import LLMConfig
from genrec.rankers import RANKERS
from tests.test_cli_errors import clean_error

runner = CliRunner()
CONFIG_CLASSES = [
    EncoderConfig,
    ImageGeneratorConfig,
    LLMConfig,
    *(RANKERS.get(n).config_class for n in RANKERS.names()),
]


@pytest.fixture
def no_accelerator(monkeypatch: pytest.MonkeyPatch) -> None:
    """This machine as one without CUDA or MPS, whatever it really has."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)


def test_devices_this_machine_lacks(no_accelerator) -> None:
    assert available_devices() == ["cpu"] and check_device_available("cpu") == "cpu"
    with pytest.raises(DeviceUnavailableError) as info:
        check_device_available("cuda:7")
    assert str(info.value) == "device 'cuda:7' is not available: this machine has no CUDA device; available: cpu"
    with pytest.raises(DeviceUnavailableError, match=r"device 'mps' is not available: this machine has no MPS"):
        check_device_available("mps")


def test_a_cuda_index_beyond_the_gpus_there_are(two_gpus) -> None:
    assert check_device_available("cuda") == "cuda" and check_device_available("cuda:1") == "cuda:1"
    with pytest.raises(DeviceUnavailableError) as info:
        check_device_available("cuda:7")
    assert str(info.value) == (
        "device 'cuda:7' is not available: this machine has 2 CUDA device(s), cuda:0 to cuda:1; "
        "available: cpu, cuda:0, cuda:1"
    )


@pytest.mark.parametrize("config_class", CONFIG_CLASSES, ids=lambda c: c.__name__)
def test_every_config_with_a_device_refuses_a_missing_one(config_class, no_accelerator, monkeypatch) -> None:
    required = {"model": "x"} if config_class is ImageGeneratorConfig else {}
    with pytest.raises(ConfigError, match=r"device: device 'cuda:7' is not available: this machine has no CUDA"):
        config_class.from_dict({"device": "cuda:7"} | required)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    assert config_class.from_dict({"device": "cuda:7"} | required).device == "cuda:7"


def test_commands_refuse_a_missing_device_before_loading(no_accelerator, tmp_path) -> None:
    missing = str(tmp_path / "no-such-data")  # loading it would fail: the device error must come first
    encode = runner.invoke(app, ["encode", "--dataset", missing, "--device", "cuda:7", "--no-progress"])
    clean_error(encode, "--device: device 'cuda:7' is not available: this machine has no CUDA device; available: cpu")
    benchmark = ["benchmark", "ranking", "--dataset", missing, "--ranker", "hstu", "--set", "device=mps"]
    clean_error(runner.invoke(app, benchmark), "device: device 'mps' is not available")
