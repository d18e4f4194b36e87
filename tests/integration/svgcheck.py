#!/usr/bin/env python3
"""Check a `clsnap diagram` SVG (or the SVG inside its HTML page) against
the trace it was drawn from (docs/TRACE.md, "Marked elements").

  svgcheck.py FILE.svg|FILE.html TRACE [--snap LIST]

The SVG must parse as XML (for a page: its first <svg>...</svg>), and the
file must make no network fetch (no http(s):// or //host in src, in href
other than a link's, in CSS url() or @import; xmlns values are fine).
Counted independently from the trace: one `msg token` element per token
message (received or in flight), `msg token recorded` exactly for those a
drawn snapshot recorded (data-snap: those snapshots), one `msg marker` per
marker_send of a drawn snapshot, one `cut` per drawn snapshot with a record
event; data-src, data-dst, data-seq and data-snap must name exactly those
messages and snapshots, and every token message has a <title>. No other
element may use the classes msg, token, marker, cut or recorded. --snap LIST
(`0,2,5-7`) is the diagram's --snap: only those snapshots are drawn.
Prints a summary line and exits 0, or one line per failure and exits 1;
2 on unreadable input. Imports nothing of clsnap.
"""
import argparse
import json
import re
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from html.parser import HTMLParser

NAMES = {"msg", "token", "marker", "cut", "recorded"}
KINDS = {
    frozenset({"msg", "token"}): "token",
    frozenset({"msg", "token", "recorded"}): "token",
    frozenset({"msg", "marker"}): "marker",
    frozenset({"cut"}): "cut",
}
REMOTE = re.compile(r"\s*(https?:)?//", re.I)
CSS_REMOTE = re.compile(r"(url\(\s*['\"]?|@import\s+['\"]?)\s*(https?:)?//",
                        re.I)


def usage_error(msg):
    print(f"svgcheck: {msg}", file=sys.stderr)
    sys.exit(2)


def parse_list(text):
    """`0,2,5-7` -> {0, 2, 5, 6, 7}."""
    ids = set()
    for part in text.split(","):
        m = re.fullmatch(r"\s*(\d+)\s*(?:-\s*(\d+)\s*)?", part)
        if not m or (m[2] and int(m[2]) < int(m[1])):
            usage_error(f"bad --snap list {text!r}")
        ids.update(range(int(m[1]), int(m[2] or m[1]) + 1))
    return ids


def read_trace(path, drawn):
    """What the diagram of TRACE must mark, from the trace alone."""
    tokens, recorded, markers, cuts = set(), {}, Counter(), set()
    try:
        with open(path, encoding="utf-8") as f:
            for no, line in enumerate(f, 1):
                e = json.loads(line)
                ev = e["ev"]
                if ev == "dropped":
                    usage_error(f"{path}:{no}: a trace with a gap")
                if ev == "send":
                    tokens.add((e["server"], e["peer"], e["seq"]))
                elif ev == "recv":
                    snaps = {s for s in e["recorded"] if drawn(s)}
                    if snaps:
                        recorded[(e["peer"], e["server"], e["seq"])] = snaps
                elif ev == "marker_send" and drawn(e["snap"]):
                    markers[(e["server"], e["peer"], e["seq"], e["snap"])] += 1
                elif ev == "record" and drawn(e["snap"]):
                    cuts.add(e["snap"])
    except (OSError, ValueError, KeyError, TypeError) as e:
        usage_error(f"{path}: unreadable trace: {e!r}")
    return tokens, recorded, markers, cuts


class Refs(HTMLParser):
    """Attributes that would make a browser fetch something remote."""

    def __init__(self):
        super().__init__()
        self.remote = []

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if not value or name.startswith("xmlns"):
                continue
            fetches = (name in ("src", "srcset", "data", "poster",
                                "background", "action")
                       or (name in ("href", "xlink:href") and tag != "a"))
            if fetches and REMOTE.match(value):
                self.remote.append(f"<{tag} {name}={value!r}>")

    handle_startendtag = handle_starttag


def first_svg(text):
    """The first <svg ...>...</svg> of a page, nested ones included."""
    start = re.search(r"<svg\b", text, re.I)
    if not start:
        return None
    depth = 0
    for m in re.finditer(r"<(/?)svg\b[^>]*?(/?)>", text[start.start():], re.I):
        if m[1]:
            depth -= 1
        elif not m[2]:
            depth += 1
        if depth == 0:
            return text[start.start():start.start() + m.end()]
    return None


def ints(value):
    try:
        return [int(x) for x in value.split()]
    except (AttributeError, ValueError):
        return None


def main():
    ap = argparse.ArgumentParser(description="Check a clsnap diagram's "
                                 "marked elements against its trace.")
    ap.add_argument("svg")
    ap.add_argument("trace")
    ap.add_argument("--snap", metavar="LIST", help="ids drawn, e.g. 0,2,5-7")
    args = ap.parse_args()
    selected = parse_list(args.snap) if args.snap is not None else None
    drawn = (lambda s: True) if selected is None else (lambda s: s in selected)
    tokens, recorded, markers, cuts = read_trace(args.trace, drawn)
    try:
        with open(args.svg, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        usage_error(f"{args.svg}: {e}")
    fails = []

    def fail(what):
        fails.append(f"svgcheck: {args.svg}: {what}")

    refs = Refs()
    refs.feed(text)
    for r in refs.remote:
        fail(f"fetches from the network: {r}")
    for m in CSS_REMOTE.finditer(text):
        fail(f"fetches from the network: {m[0]!r}")
    svg = text if not re.match(r"\s*(<!doctype html|<html)", text, re.I) \
        else first_svg(text)
    try:
        if svg is None:
            raise ET.ParseError("no <svg>...</svg> in the page")
        root = ET.fromstring(svg)
    except ET.ParseError as e:
        fail(f"SVG does not parse as XML: {e}")
        root = ET.Element("none")
    if root.tag.rsplit("}", 1)[-1] != "svg" and root.tag != "none":
        fail(f"root element is <{root.tag}>, not <svg>")

    got = {"token": Counter(), "marker": Counter(), "cut": Counter()}
    got_recorded = {}
    for el in root.iter():
        classes = set((el.get("class") or "").split())
        names = frozenset(classes & NAMES)
        if not names:
            continue
        kind = KINDS.get(names)
        tag = el.tag.rsplit("}", 1)[-1]
        if kind is None:
            fail(f"<{tag} class={el.get('class')!r}> uses the marked "
                 "class names but is no message or cut")
            continue
        snap = ints(el.get("data-snap"))
        if kind == "cut":
            if snap is None or len(snap) != 1:
                fail(f"cut with data-snap {el.get('data-snap')!r}")
            else:
                got["cut"][snap[0]] += 1
            continue
        key = (el.get("data-src"), el.get("data-dst"),
               ints(el.get("data-seq")))
        if None in key or len(key[2]) != 1:
            fail(f"<{tag} class={el.get('class')!r}> without data-src, "
                 "data-dst and one data-seq")
            continue
        key = key[:2] + (key[2][0],)
        if kind == "marker":
            if snap is None or len(snap) != 1:
                fail(f"marker {key} with data-snap {el.get('data-snap')!r}")
                continue
            got["marker"][key + (snap[0],)] += 1
            continue
        got["token"][key] += 1
        titles = [c for c in el if c.tag.rsplit("}", 1)[-1] == "title"]
        if not titles or not "".join(titles[0].itertext()).strip():
            fail(f"token message {key} has no <title>")
        if "recorded" in names:
            if snap is None or snap != sorted(set(snap)) or not snap:
                fail(f"recorded message {key} with data-snap "
                     f"{el.get('data-snap')!r}")
            got_recorded[key] = set(snap or [])
        elif el.get("data-snap") is not None:
            fail(f"message {key} has data-snap but is not recorded")

    def compare(what, have, want):
        want = Counter(want)
        if have != want:
            extra = sorted((have - want).elements())[:5]
            missing = sorted((want - have).elements())[:5]
            fail(f"{sum(have.values())} {what} elements, the trace gives "
                 f"{sum(want.values())}; extra {extra}, missing {missing}")
    compare("msg token", got["token"], tokens)
    compare("msg marker", got["marker"], markers)
    compare("cut", got["cut"], cuts)
    for key in sorted(set(got_recorded) | set(recorded), key=str):
        if got_recorded.get(key) != recorded.get(key):
            fail(f"message {key}: drawn as recorded by "
                 f"{sorted(got_recorded.get(key, []))}, the trace says "
                 f"{sorted(recorded.get(key, []))}")
    if fails:
        print("\n".join(fails[:30]))
        if len(fails) > 30:
            print(f"svgcheck: ... and {len(fails) - 30} more")
        return 1
    print(f"svgcheck: {args.svg}: {len(tokens)} token messages "
          f"({len(recorded)} recorded), {sum(markers.values())} markers, "
          f"{len(cuts)} cuts: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
