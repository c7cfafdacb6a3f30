"""Server-side SVG charts: no script, no external library, allowed by the strict CSP."""

from __future__ import annotations

import datetime as dt

from django import template
from django.utils.html import format_html
from django.utils.safestring import SafeString

register = template.Library()


@register.simple_tag
def sparkline(
    series: list[tuple[dt.datetime, int]], label: str, width: int = 240, height: int = 48
) -> SafeString:
    values = [value for _, value in series] or [0]
    peak = max(values) or 1
    step = width / max(len(values) - 1, 1)
    points = " ".join(
        f"{index * step:.1f},{height - 2 - (value / peak) * (height - 4):.1f}"
        for index, value in enumerate(values)
    )
    return format_html(
        '<svg class="sparkline" role="img" aria-label="{}" width="{}" height="{}" viewBox="0 0 {} {}">'
        '<polyline fill="none" stroke="#000091" stroke-width="2" points="{}"/></svg>',
        f"{label} : max {peak}, total {sum(values)}",
        width,
        height,
        width,
        height,
        points,
    )
