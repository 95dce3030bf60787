"""Title and description templates: ``{metric}`` fields with format specs and nothing more."""

from __future__ import annotations

import pytest

from bot.config.templates import MISSING, Template, TemplateError


def slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


# --- rendering --------------------------------------------------------------------------------


def test_a_format_spec_formats_the_number() -> None:
    template = Template("Current accuracy: {current_accuracy:.3f}, baseline: {baseline_accuracy:.3f}.")

    assert template.render({"current_accuracy": 0.8, "baseline_accuracy": 0.95}) == (
        "Current accuracy: 0.800, baseline: 0.950."
    )
    assert template.fields == {"current_accuracy", "baseline_accuracy"}


@pytest.mark.parametrize(
    ("text", "value", "shown"),
    [
        ("{x}", 6100.0, "6100"),  # a whole float reads as an integer
        ("{x}", 0.25, "0.25"),
        ("{x:,.0f}", 12000.0, "12,000"),
        ("{x:.1%}", 0.953, "95.3%"),
        ("{x:>6}", "ok", "    ok"),
        ("{x:,d}", 1234.0, "1,234"),  # a float meeting an integer spec is rounded, not refused
        ("{x:,d}", 1234.6, "1,235"),
        ("{x:.2f}", 7, "7.00"),
        ("${x:.2f}", 450.0, "$450.00"),
    ],
)
def test_values_render_with_their_spec(text: str, value: object, shown: str) -> None:
    assert Template(text).render({"x": value}) == shown


def test_a_missing_value_renders_n_a() -> None:
    template = Template("Expected ~{expected:,.0f}/hr, got {got:,.0f}.")

    assert MISSING == "n/a"
    assert template.render({"got": 5000.0}) == "Expected ~n/a/hr, got 5,000."
    assert template.render({}) == "Expected ~n/a/hr, got n/a."


def test_a_label_meeting_a_numeric_spec_falls_back_to_its_text() -> None:
    template = Template("Accuracy {current_accuracy:.3f}, top: {top:,d}")

    assert template.render({"current_accuracy": "pending labels", "top": "amount"}) == (
        "Accuracy pending labels, top: amount"
    )


def test_literal_braces_are_text() -> None:
    assert Template('{{"model": "{model}"}}').render({"model": "fraud"}) == '{"model": "fraud"}'


def test_text_without_fields_renders_as_is() -> None:
    assert Template("").render({}) == ""
    assert Template("Check the *dashboard*.").fields == frozenset()


def test_escape_is_applied_to_values_only_never_to_the_template_text() -> None:
    template = Template("<!here> *{model}*: top drifted {top}")

    shown = template.render({"model": "fraud", "top": "<@U123> & <!channel>"}, escape=slack_escape)

    assert shown == "<!here> *fraud*: top drifted &lt;@U123&gt; &amp; &lt;!channel&gt;"


def test_escape_also_covers_missing_values() -> None:
    assert Template("[{x}]").render({}, escape=lambda s: s.upper()) == "[N/A]"


# --- refused at load --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("{x.__class__}", "field {x.__class__} is not allowed"),
        ("{x.__class__.__mro__}", "no attribute access, indexing or positions"),
        ("{x[0]}", "field {x[0]} is not allowed"),
        ("{0}", "field {0} is not allowed"),
        ("{}", "field {} is not allowed"),
        ("{_private}", "field {_private} is not allowed"),
        ("{x!r}", "conversion !r on {x} is not supported"),
        ("{x!s}", "conversion !s on {x} is not supported"),
        ("{x:.3q}", "format spec '.3q' of {x} is invalid; use one such as .3f, .1%, >8 or ,d"),
        ("{x:{y}}", "nested fields in {x:{y}} are not allowed"),
        ("{x:.{y}f}", "nested fields"),
    ],
)
def test_unsafe_or_broken_fields_are_refused_at_load(text: str, says: str) -> None:
    with pytest.raises(TemplateError) as refused:
        Template(text)

    assert f"template {text!r}" in str(refused.value)
    assert says in str(refused.value)


@pytest.mark.parametrize("text", ["{model", "latency } high", "{model:"])
def test_unbalanced_braces_are_refused_with_how_to_write_a_literal_brace(text: str) -> None:
    with pytest.raises(TemplateError) as refused:
        Template(text)

    message = str(refused.value)
    assert f"cannot parse template {text!r}" in message
    assert "a literal brace as {{ or }}" in message


def test_every_spec_the_error_message_recommends_is_accepted() -> None:
    for spec in (".3f", ".1%", ">8", ",d"):
        assert Template(f"{{x:{spec}}}").fields == {"x"}


def test_a_template_must_be_text() -> None:
    with pytest.raises(TemplateError, match="a template must be text, not int"):
        Template(5000)  # type: ignore[arg-type]
