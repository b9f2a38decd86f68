"""The campaign funnel drawn as an SVG on the server: no chart library, no external service."""

from __future__ import annotations

from markupsafe import Markup, escape

# (key, French label) from the widest step to the narrowest.
FUNNEL_STEPS = (
    ("queued", "Mis en file"),
    ("sent", "Envoyés"),
    ("delivered", "Remis"),
    ("failed", "Échecs"),
    ("replied", "Réponses"),
    ("escalated", "Situations ouvertes"),
)
# A journey's later steps, drawn after the first campaign's own.
JOURNEY_STEPS = (
    ("reminded", "Relancés"),
    ("called", "Appels prévus"),
    ("reached_by_call", "Joints au téléphone"),
)
WIDTH = 640
LABEL_WIDTH = 170
BAR_MAX = WIDTH - LABEL_WIDTH - 70
ROW = 34
BAR = 24


def bar_width(value: int, largest: int) -> int:
    """At least a sliver for a non-zero step, so that it can be seen."""
    if value <= 0 or largest <= 0:
        return 0
    return max(2, round(BAR_MAX * value / largest))


def funnel_steps(counts: dict[str, int]) -> tuple[tuple[str, str], ...]:
    """The funnel's steps: a journey's reminder and calls follow when it has them."""
    return FUNNEL_STEPS + tuple(step for step in JOURNEY_STEPS if step[0] in counts)


def funnel_svg(counts: dict[str, int]) -> Markup:
    """A horizontal bar per step, with its label and count; app.js updates the bars live."""
    steps = funnel_steps(counts)
    largest = max([counts.get(key, 0) for key, _ in steps] + [1])
    height = ROW * len(steps) + 8
    rows = []
    for index, (key, label) in enumerate(steps):
        value = int(counts.get(key, 0))
        y = 4 + index * ROW
        rows.append(
            f'<g class="step step-{key}">'
            f'<text x="0" y="{y + 17}">{escape(label)}</text>'
            f'<rect x="{LABEL_WIDTH}" y="{y}" height="{BAR}" width="{bar_width(value, largest)}"'
            f' data-funnel="{key}" rx="3"></rect>'
            f'<text x="{LABEL_WIDTH + bar_width(value, largest) + 8}" y="{y + 17}"'
            f' data-funnel-label="{key}">{value}</text>'
            "</g>"
        )
    summary = ", ".join(f"{label} : {int(counts.get(key, 0))}" for key, label in steps)
    return Markup(
        f'<svg class="funnel" role="img" aria-labelledby="funnel-title" viewBox="0 0 {WIDTH} '
        f'{height}" width="100%" data-bar-max="{BAR_MAX}" data-label-width="{LABEL_WIDTH}">'
        f'<title id="funnel-title">Entonnoir de la campagne : {escape(summary)}</title>'
        + "".join(rows)
        + "</svg>"
    )
