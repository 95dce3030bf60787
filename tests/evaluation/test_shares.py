"""Rendezvous shares: the live evaluators split the models with no coordination but their list."""

from __future__ import annotations

from bot.evaluation.shares import Share, owner

MODELS = [f"model-{n:04d}" for n in range(1000)]


def shares(members: list[str]) -> dict[str, set[str]]:
    """Each member's models, as each member's own :class:`Share` computes them."""
    out = {}
    for me in members:
        share = Share(me)
        share.update(members)
        out[me] = {model for model in MODELS if model in share}
    return out


def test_every_model_has_exactly_one_evaluator_among_the_members() -> None:
    split = shares(["a", "b", "c"])

    assert set().union(*split.values()) == set(MODELS)
    assert sum(len(models) for models in split.values()) == len(MODELS)


def test_the_split_is_about_even() -> None:
    split = shares(["host-1:100:aa", "host-2:200:bb"])

    assert all(400 <= len(models) <= 600 for models in split.values()), {m: len(s) for m, s in split.items()}


def test_a_joining_member_takes_models_only_from_the_others_not_between_them() -> None:
    before, after = shares(["a", "b"]), shares(["a", "b", "c"])

    assert after["a"] <= before["a"] and after["b"] <= before["b"]
    assert after["c"] == (before["a"] - after["a"]) | (before["b"] - after["b"])
    assert 200 <= len(after["c"]) <= 467


def test_a_leaving_members_models_spread_over_the_others_and_nothing_else_moves() -> None:
    before, after = shares(["a", "b", "c"]), shares(["a", "c"])

    assert before["a"] <= after["a"] and before["c"] <= after["c"]
    assert (after["a"] - before["a"]) | (after["c"] - before["c"]) == before["b"]


def test_a_lone_member_evaluates_everything_and_always_counts_itself_in() -> None:
    share = Share("me")

    assert share.update([]) is False  # alone before, alone still
    assert all(model in share for model in MODELS)
    assert share.update(["other"]) is True
    assert share.members == ("me", "other")
    assert {model for model in MODELS if model in share} == {m for m in MODELS if owner(m, ["me", "other"]) == "me"}
    assert share.update(["other", "me"]) is False


def test_every_member_computes_the_same_owner_whatever_order_it_lists_them_in() -> None:
    assert all(owner(model, ["a", "b", "c"]) == owner(model, ["c", "a", "b"]) for model in MODELS)
