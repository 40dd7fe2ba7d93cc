"""Accept header negotiation (RFC 9110 §12.5.1, PS3.18 §8.7)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MediaRange:
    """One entry of an Accept header."""

    type: str
    params: dict[str, str] = field(default_factory=dict)
    q: float = 1.0

    def matches(self, media_type: str) -> bool:
        """True if ``media_type`` falls within this range."""
        if self.type in ("*/*", media_type):
            return True
        major, _, minor = self.type.partition("/")
        return minor == "*" and media_type.startswith(major + "/")


def _split_outside_quotes(value: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in value:
        if ch == '"':
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def parse_media_range(text: str) -> MediaRange:
    """Parse ``type/subtype; a=b; q=0.5``."""
    pieces = _split_outside_quotes(text, ";")
    params: dict[str, str] = {}
    q = 1.0
    for piece in pieces[1:]:
        name, _, value = piece.strip().partition("=")
        name, value = name.strip().lower(), value.strip().strip('"')
        if name == "q":
            try:
                q = float(value)
            except ValueError:
                q = 0.0
        elif name:
            params[name] = value
    return MediaRange(pieces[0].strip().lower() or "*/*", params, q)


def parse_accept(header: str | None) -> list[MediaRange]:
    """Media ranges by preference (q descending, then order given); ``*/*`` when absent."""
    if not header or not header.strip():
        return [MediaRange("*/*")]
    ranges = [parse_media_range(p) for p in _split_outside_quotes(header, ",") if p.strip()]
    ranges = [r for r in ranges if r.q > 0]
    return sorted(ranges, key=lambda r: -r.q)
