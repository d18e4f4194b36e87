#!/usr/bin/python3
"""Open a `clsnap diagram -o FILE.html` page in headless Chromium and check it.

  /usr/bin/python3 browser.py PAGE.html SCREENSHOT.png [--total]

Needs Debian's python3-selenium, chromium and chromium-driver; exits 77
("skipped: ...") without them. Loads file://PAGE and checks: no console
message of level SEVERE; the step-through works (clicking #next changes
#step each time and #state at least once, and moves #slider; #prev goes
back to the previous #step and #state); the page requested nothing over
the network (performance log and resource timing); the screenshot, saved
to SCREENSHOT, is not blank (at least 3 colours, 1% non-white pixels).
With --total, the slider is also set to 0, 1/4, 1/2, 3/4 and the end of
the run, and the total the state shows ("held H + in flight F = T") must
be the same at each: tokens are conserved, also on a trace of a running
cluster with messages crossing its edges.
Prints what failed, or a summary line, and exits 1 or 0.
"""
import json
import os
import struct
import sys
import time
import zlib

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"


def skip(why):
    print(f"skipped: {why}")
    sys.exit(77)


try:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError as e:
    skip(f"no selenium ({e})")


def png_pixels(data):
    """(width, height, list of rows of pixel tuples) of an 8-bit PNG."""
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError("not a PNG")
    pos, idat, head = 8, b"", None
    while pos < len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + size]
        if kind == b"IHDR":
            head = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + size
    width, height, depth, colour, _, _, interlace = head
    channels = {0: 1, 2: 3, 4: 2, 6: 4}.get(colour)
    if depth != 8 or channels is None or interlace:
        raise ValueError(f"unsupported PNG (depth {depth}, colour {colour})")
    raw, bpp, stride = zlib.decompress(idat), channels, width * channels
    rows, prev = [], bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, row = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:
            for x in range(bpp, stride):
                row[x] = (row[x] + row[x - bpp]) & 255
        elif kind == 2:
            row = bytearray((a + b) & 255 for a, b in zip(row, prev))
        elif kind == 3:
            for x in range(stride):
                left = row[x - bpp] if x >= bpp else 0
                row[x] = (row[x] + ((left + prev[x]) >> 1)) & 255
        elif kind == 4:
            for x in range(stride):
                a = row[x - bpp] if x >= bpp else 0
                b, c = prev[x], prev[x - bpp] if x >= bpp else 0
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if pa <= pb and pa <= pc else b if pb <= pc else c
                row[x] = (row[x] + pred) & 255
        rows.append([tuple(row[x:x + bpp]) for x in range(0, stride, bpp)])
        prev = row
    return width, height, rows


def main():
    total = "--total" in sys.argv[3:]
    if len(sys.argv) != 3 + total:
        print("usage: browser.py PAGE.html SCREENSHOT.png [--total]",
              file=sys.stderr)
        return 2
    page, shot = os.path.abspath(sys.argv[1]), sys.argv[2]
    if not os.path.isfile(page):
        print(f"browser: {page}: no such file", file=sys.stderr)
        return 2
    for path in (CHROMEDRIVER, CHROMIUM):
        if not os.access(path, os.X_OK):
            skip(f"no {path}")
    opts = webdriver.ChromeOptions()
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--window-size=1280,900"):
        opts.add_argument(arg)
    opts.binary_location = CHROMIUM
    opts.set_capability("goog:loggingPrefs",
                        {"browser": "ALL", "performance": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    except WebDriverException as e:
        print(f"browser: cannot start chromium: {e.msg}")
        return 1
    fails = []
    try:
        check(driver, page, shot, fails)
        if total and not fails:
            check_total(driver, fails)
    except WebDriverException as e:
        fails.append(f"webdriver: {e.msg}")
    finally:
        driver.quit()
    if fails:
        for f in fails:
            print(f"browser: {page}: {f}")
        return 1
    return 0


def check(driver, page, shot, fails):
    driver.get("file://" + page)
    WebDriverWait(driver, 10).until(lambda d: d.execute_script(
        "return document.readyState") == "complete")
    missing = [i for i in ("prev", "next", "slider", "step", "state")
               if not driver.find_elements(By.ID, i)]
    if missing:
        fails.append(f"no element with id {', '.join(missing)}")
        return
    time.sleep(0.3)

    def now():
        return (driver.find_element(By.ID, "step").text,
                driver.find_element(By.ID, "state").text,
                driver.find_element(By.ID, "slider").get_property("value"))
    seen = [now()]
    if not seen[0][1].strip():
        fails.append("#state is empty")
    for k in range(1, 4):
        driver.find_element(By.ID, "next").click()
        seen.append(now())
        if seen[k][0] == seen[k - 1][0]:
            fails.append(f"#step did not change on next click {k}: "
                         f"{seen[k][0]!r}")
        if float(seen[k][2]) <= float(seen[k - 1][2]):
            fails.append(f"#slider did not move on next click {k}: "
                         f"{seen[k - 1][2]} -> {seen[k][2]}")
    if all(s[1] == seen[0][1] for s in seen):
        fails.append(f"#state did not change in 3 steps: {seen[0][1]!r}")
    driver.find_element(By.ID, "prev").click()
    back = now()
    if back != seen[2]:
        fails.append(f"prev did not go back: step/state/slider {back}, "
                     f"expected {seen[2]}")

    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    for e in severe:
        fails.append(f"console: {e['message']}")
    requests = [json.loads(e["message"])["message"]
                for e in driver.get_log("performance")]
    urls = [r["params"]["request"]["url"] for r in requests
            if r.get("method") == "Network.requestWillBeSent"]
    urls += driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)")
    remote = sorted({u for u in urls if not u.startswith(("file:", "data:",
                                                          "blob:", "about:"))})
    for u in remote:
        fails.append(f"network request: {u}")

    png = driver.get_screenshot_as_png()
    with open(shot, "wb") as f:
        f.write(png)
    width, height, rows = png_pixels(png)
    colours, white = set(), 0
    for row in rows:
        colours.update(row)
        white += sum(1 for p in row if min(p[:3] if len(p) > 2 else p[:1])
                     >= 250)
    dark = 1 - white / (width * height)
    if len(colours) < 3 or dark < 0.01:
        fails.append(f"screenshot looks blank: {len(colours)} colours, "
                     f"{dark:.1%} non-white")
    if not fails:
        state = " / ".join(seen[-1][1].split("\n"))
        print(f"browser: {os.path.basename(page)}: {len(seen) - 1} steps "
              f"shown, state now {state[:60]!r}; no console error, "
              f"no network request; screenshot {width}x{height}, "
              f"{len(colours)} colours, {dark:.1%} non-white: ok")


def check_total(driver, fails):
    n = int(driver.find_element(By.ID, "slider").get_attribute("max"))
    totals = {}
    for k in sorted({0, n // 4, n // 2, 3 * n // 4, n}):
        driver.execute_script(
            "var s = document.getElementById('slider'); s.value = arguments[0];"
            "s.dispatchEvent(new Event('input'));", k)
        lines = driver.find_element(By.ID, "state").text.split("\n")
        line = next((l for l in lines if l.startswith("held ")), "")
        try:
            totals[k] = int(line.rsplit("=", 1)[1])
        except (IndexError, ValueError):
            fails.append(f"step {k}: no 'held H + in flight F = T' line")
            return
    if len(set(totals.values())) != 1:
        fails.append(f"the total changes from step to step: {totals}")
    else:
        print(f"browser: total {totals[0]} at steps {sorted(totals)}: ok")


if __name__ == "__main__":
    sys.exit(main())
