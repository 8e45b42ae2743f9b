"""PCLMConfig checks its own fields: every bad value is refused with a ValueError naming the field, the rule and
the value; the training command turns the same rule into one `error:` line (tests/cli/test_train_lm.py)."""

from __future__ import annotations

import pytest

from pclm.config import check_lm_model
from pclm.errors import UsageError
from pclm.models import PCLMConfig


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"vocab_size": 0}, "vocab_size must be >= 1, got 0"),
        ({"hidden_size": 0}, "hidden_size must be >= 1, got 0"),
        ({"num_hidden_layers": -1}, "num_hidden_layers must be >= 1, got -1"),
        ({"num_attention_heads": 0}, "num_attention_heads must be >= 1, got 0"),
        ({"intermediate_size": 0}, "intermediate_size must be >= 1, got 0"),
        ({"max_position_embeddings": 0}, "max_position_embeddings must be >= 1, got 0"),
        ({"hidden_size": 16.0}, "hidden_size must be an integer, got 16.0"),
        ({"num_hidden_layers": True}, "num_hidden_layers must be an integer, got True"),
        ({"hidden_size": 30, "num_attention_heads": 4}, "hidden_size 30 is not a multiple of num_attention_heads 4"),
        ({"init": "xavier"}, "init must be one of bert, torch, got 'xavier'"),
        ({"hidden_act": "relu"}, "hidden_act must be one of gelu, tanh, got 'relu'"),
        ({"layer_norm": 1}, "layer_norm must be true or false, got 1"),
        ({"layer_norm_eps": 0.0}, "layer_norm_eps must be a finite number > 0, got 0.0"),
        ({"hidden_dropout_prob": 1.0}, "hidden_dropout_prob must be in [0, 1), got 1.0"),
        ({"attention_probs_dropout_prob": -0.1}, "attention_probs_dropout_prob must be in [0, 1), got -0.1"),
        ({"initializer_range": float("inf")}, "initializer_range must be a finite number > 0, got inf"),
    ],
)
def test_a_bad_field_is_refused_with_its_rule(bad, message):
    with pytest.raises(ValueError) as err:
        PCLMConfig(**bad)
    assert str(err.value) == message


def test_good_fields_pass_and_survive_a_round_trip():
    config = PCLMConfig(vocab_size=1, hidden_size=6, num_attention_heads=3, max_position_embeddings=1, layer_norm=False)
    again = PCLMConfig.from_dict(config.to_dict())
    assert (again.vocab_size, again.hidden_size, again.num_attention_heads, again.layer_norm) == (1, 6, 3, False)


@pytest.mark.parametrize(
    "section, message",
    [
        ({"hidden_size": 0}, "config key 'model.hidden_size' must be >= 1, got 0"),
        ({"initializer_range": -1.0}, "config key 'model.initializer_range' must be a finite number > 0, got -1.0"),
        ({"hidden_act": "relu"}, "config key 'model.hidden_act' must be one of gelu, tanh, got relu"),
        ({"max_position_embeddings": 1}, "config key 'model.max_position_embeddings' must be >= 2, got 1"),
    ],
)
def test_a_runs_model_section_is_checked_by_the_configs_rules(section, message):
    with pytest.raises(UsageError) as err:
        check_lm_model(section)
    assert str(err.value) == message


def test_a_runs_model_section_leaves_other_keys_alone():
    check_lm_model({"pad_token_id": 0, "hidden_size": "64"})  # ids have no rule; text is the job's type check
