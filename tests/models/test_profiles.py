"""Model profiles: capabilities from the GGUF chat template, built-in profiles, the layers
(built-in < derivative < server < user), derivatives in the store, and ``openwen create``."""

from __future__ import annotations

import json

import pytest
import typer
from typer.testing import CliRunner

from openwen.chat.turn import ChatSettings
from openwen.cli import models_cmd
from openwen.config import Settings
from openwen.errors import InvalidRequestError
from openwen.models import catalog
from openwen.models.profiles import (
    QWEN_PLAIN,
    QWEN_THINKING,
    SMOLLM2_SYSTEM,
    Capabilities,
    Profile,
    SamplingDefaults,
    builtin_profile,
    load_derivatives,
    profile_for,
    save_derivative,
)
from openwen.models.store import ModelStore

TOOLS_TEMPLATE = (
    "{% if tools %}{% for t in tools %}{{ t | tojson }}{% endfor %}{% endif %}"
    "{% for m in messages %}{% if m.tool_calls %}<tool_call>{% endif %}{{ m.content }}"
    "{% endfor %}"
)
THINK_TEMPLATE = (
    "{% for m in messages %}{{ m.content }}{% endfor %}"
    "{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>{% endif %}"
)
PLAIN_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>{% endfor %}"
)


def test_capabilities_come_from_the_template_not_the_name() -> None:
    assert Capabilities.from_template(TOOLS_TEMPLATE) == Capabilities(True, False, True)
    assert Capabilities.from_template(THINK_TEMPLATE) == Capabilities(False, True, True)
    assert Capabilities.from_template(PLAIN_TEMPLATE) == Capabilities(False, False, True)
    assert Capabilities.from_template(None) == Capabilities()


def test_bundled_smollm2_profile(store_settings: Settings) -> None:
    profile, caps = profile_for("smollm2", store_settings)
    assert profile.system == SMOLLM2_SYSTEM  # keeps the 135M model from rambling
    assert profile.tools is False  # its ~1,000-token tools prompt swamps it
    assert profile.thinking is None and caps.thinking is False  # its template cannot think
    assert caps.tools is False  # SmolLM2's template has no tools


def test_every_catalog_model_has_a_profile() -> None:
    for entry in catalog.catalog().values():
        profile = builtin_profile(entry.name, Capabilities(tools=True, thinking=True))
        assert profile.description, entry.name
        if entry.name.startswith("qwen"):
            assert profile.tools is True and profile.sampling == QWEN_PLAIN
            if entry.thinking:
                assert profile.thinking is True
                assert profile.sampling_for(True) == QWEN_THINKING
                assert profile.sampling_for(False) == QWEN_PLAIN
        else:
            assert profile.tools is False and profile.system == SMOLLM2_SYSTEM


def test_unknown_model_gets_defaults_from_its_capabilities() -> None:
    assert builtin_profile("someone/else", Capabilities(tools=False)).tools is False
    assert builtin_profile("someone/else", Capabilities(tools=True)).tools is True


def test_layers_fill_only_what_they_set(store_settings: Settings) -> None:
    server = {"smollm2": {"system": "Answer in one sentence.", "sampling": {"temperature": 0.5}}}
    user = {"smollm2": {"sampling": {"temperature": 0.1}, "tools": True}}
    profile, _ = profile_for("smollm2", store_settings, server=server, user=user)
    assert profile.system == "Answer in one sentence."  # server layer
    assert profile.sampling.temperature == 0.1  # the user's wins over the server's
    assert profile.sampling.top_p == 0.9  # built-in, untouched
    assert profile.tools is True
    # bad stored values are ignored, never an error
    broken = {"smollm2": {"sampling": {"temperature": "hot"}, "tools": "yes", "context": -1}}
    profile, _ = profile_for("smollm2", store_settings, user=broken)
    assert profile.sampling.temperature == 0.0 and profile.tools is False
    assert profile.context == 8192


def test_chat_settings_sit_on_top_of_the_profile() -> None:
    profile = Profile(system="S", sampling=QWEN_PLAIN, thinking_sampling=QWEN_THINKING,
                      thinking=True, tools=True)
    caps = Capabilities(tools=True, thinking=True)
    unset = ChatSettings().with_profile(profile, caps)
    assert (unset.thinking, unset.tools, unset.default_system) == (True, True, "S")
    assert unset.sampling().temperature == 0.6 and unset.sampling().top_k == 20
    chat = ChatSettings(thinking=False, temperature=1.1, tools=False).with_profile(profile, caps)
    assert chat.thinking is False and chat.tools is False
    assert chat.sampling().temperature == 1.1 and chat.sampling().top_p == 0.8  # non-thinking
    no_think = ChatSettings(thinking=True).with_profile(profile, Capabilities(tools=True))
    assert no_think.thinking is None  # a model that cannot think gets no switch


def test_derivatives_are_listed_with_their_base(store_settings: Settings) -> None:
    root = store_settings.models_path
    save_derivative(root, "polite", Profile(base="smollm2", system="Be polite."))
    save_derivative(root, "polite:terse", Profile(base="polite", sampling=SamplingDefaults(0.3)))
    store = ModelStore(store_settings)
    by_name = {m.name: m for m in store.list()}
    assert by_name["polite"].base == "smollm2"
    assert by_name["polite:terse"].base == "polite"
    assert by_name["polite"].path == by_name["smollm2"].path  # the same weights
    profile, _ = profile_for("polite:terse", store_settings)
    assert profile.system == "Be polite." and profile.sampling.temperature == 0.3
    assert profile.tools is False  # from the bundled model's built-in profile
    assert store.resolve("polite").name == "polite"
    # naming the base's file still finds the base alone, not its derivatives
    assert store.resolve(by_name["smollm2"].path.name).name == "smollm2"
    removed = store.remove("polite:terse")
    assert removed.base == "polite" and by_name["smollm2"].path.is_file()
    assert set(load_derivatives(root)) == {"polite"}


def test_derivative_of_a_missing_base_is_not_listed(store_settings: Settings) -> None:
    save_derivative(store_settings.models_path, "orphan", Profile(base="gone/model"))
    assert "orphan" not in ModelStore(store_settings).names()


@pytest.mark.parametrize("name", ["", "a/b", "../x", "-dash", "x" * 65, "sp ace"])
def test_bad_derivative_names(store_settings: Settings, name: str) -> None:
    with pytest.raises(InvalidRequestError):
        save_derivative(store_settings.models_path, name, Profile(base="smollm2"))


def test_openwen_create(store_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    app, runner = typer.Typer(), CliRunner()
    models_cmd.register(app)
    monkeypatch.setenv("OPENWEN_MODELS_DIR", str(store_settings.models_path))
    result = runner.invoke(app, ["create", "french", "--from", "smollm2", "--system",
                                 "Always answer in French.", "--temperature", "0.4"])
    assert result.exit_code == 0, result.output
    assert "created french from smollm2" in result.output
    listed = json.loads(runner.invoke(app, ["models", "--json"]).output)
    french = next(m for m in listed if m["name"] == "french")
    assert french["base"] == "smollm2"
    table = runner.invoke(app, ["models"], env={"COLUMNS": "200"}).output
    assert "made from smollm2" in table
    again = runner.invoke(app, ["create", "french", "--from", "smollm2"])
    assert again.exit_code == 1 and "exists already" in again.output
    missing = runner.invoke(app, ["create", "x", "--from", "no-such-model"])
    assert missing.exit_code == 1
    removed = runner.invoke(app, ["rm", "french"])
    assert removed.exit_code == 0 and "its weights stay" in removed.output


def test_examples_and_arithmetic_are_layers_like_the_rest() -> None:
    from openwen.messages import Message
    from openwen.models.profiles import SMOLLM2_EXAMPLES, builtin_profile

    smol = builtin_profile("smollm2", Capabilities(chat_template=True))
    assert smol.examples == SMOLLM2_EXAMPLES and smol.arithmetic is True
    stored = Profile.of({"examples": [{"user": "Q", "assistant": "A"}, {"user": 3}, "x"],
                         "arithmetic": "yes"})
    assert stored.examples == (("Q", "A"),) and stored.arithmetic is None  # bad parts ignored
    assert Profile.of(stored.to_dict()).examples == (("Q", "A"),)  # round trip
    assert stored.over(smol).examples == (("Q", "A"),) and stored.over(smol).arithmetic is True
    cleared = Profile.of({"examples": [], "arithmetic": False}).over(smol)
    assert cleared.examples == () and cleared.arithmetic is False
    chat = ChatSettings().with_profile(smol, Capabilities(chat_template=True))
    request = chat.request((Message("user", "Hi"),))
    roles = [m.role for m in request.messages]
    assert roles == ["system"] + ["user", "assistant"] * len(SMOLLM2_EXAMPLES) + ["user"]
    assert request.messages[-1].content == "Hi" and chat.arithmetic is True
    qwen = builtin_profile("qwen3:4b", Capabilities(tools=True, thinking=True))
    assert qwen.tools is True and qwen.examples is None and not qwen.arithmetic  # neither needed
