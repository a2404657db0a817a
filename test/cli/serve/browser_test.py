"""The page at / in a real browser: headless Chromium, driven through the DevTools protocol over
a pipe (--remote-debugging-pipe: NUL-separated JSON on fds 3 and 4, no extra Python package),
loads the page, types a sentence, clicks the button and must show the label the API gives for
that sentence, with one bar per label. The screenshot is kept under the build dir as an artifact.
Without Chromium the test is skipped (exit SKIP_EXIT_CODE) on a developer machine and fails under CI=true."""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from hfkit_testlib import BIN, SKIP_EXIT_CODE, main, make_tiny_bert
from servelib import Server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = os.path.abspath(os.path.join(BIN, "..", "test-artifacts", "serve"))
SENTENCE = "The battery died after a week and support never answered."
SKIP = SKIP_EXIT_CODE  # ctest SKIP_RETURN_CODE of every Python test (hfkit_py_test)


class Browser:
    """A headless Chromium and one page, commanded over the DevTools pipe."""

    def __init__(self, profile, log):
        cmd_r, self.cmd_w = os.pipe()
        self.out_r, out_w = os.pipe()

        def to_fds_3_and_4():  # Chromium reads commands on fd 3 and writes answers on fd 4
            os.dup2(cmd_r, 3)
            os.dup2(out_w, 4)
        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--remote-debugging-pipe", f"--user-data-dir={profile}", "--window-size=900,700", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=to_fds_3_and_4, pass_fds=(3, 4))
        os.close(cmd_r)
        os.close(out_w)
        self.buffer = b""
        self.next_id = 0
        self.session = None

    def send(self, method, timeout=30, **params):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        os.write(self.cmd_w, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + timeout
        while True:
            while b"\0" in self.buffer:
                raw, self.buffer = self.buffer.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self.next_id:
                    if "error" in reply:
                        raise AssertionError(f"{method}: {reply['error']}")
                    return reply["result"]
            assert time.time() < deadline, f"{method}: no answer from Chromium"
            chunk = os.read(self.out_r, 1 << 20)
            assert chunk, "Chromium closed the DevTools pipe"
            self.buffer += chunk

    def open(self, url):
        target = self.send("Target.createTarget", url=url)["targetId"]
        self.session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def js(self, expression):
        r = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        assert "exceptionDetails" not in r, r
        return r["result"].get("value")

    def wait_js(self, expression, timeout=30):
        t0 = time.time()
        while time.time() - t0 < timeout:
            v = self.js(expression)
            if v:
                return v
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {expression}")

    def click(self, selector):
        box = self.js(f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
                      " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
        for kind in ["mousePressed", "mouseReleased"]:
            self.send("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def close(self):
        try:
            self.send("Browser.close", timeout=10)
        except Exception:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.cmd_w)
        os.close(self.out_r)


def test_page_types_clicks_and_shows_the_label():
    with tempfile.TemporaryDirectory(prefix="hfkit-browser-") as work:
        model = os.path.join(work, "tiny")
        make_tiny_bert(model, "--labels", "negative,neutral,positive", "--set", "initializer_range=0.5", seed=1)
        with Server(model) as s, open(os.path.join(work, "chromium.log"), "wb") as log:
            expected = s.predict({"inputs": SENTENCE})[0]["label"]
            b = Browser(os.path.join(work, "profile"), log)
            try:
                b.open(s.url("/"))
                b.wait_js("document.readyState === 'complete' && !!document.getElementById('model') && "
                          "document.getElementById('model').textContent.startsWith('model')")
                b.js("document.getElementById('text').focus()")
                b.send("Input.insertText", text=SENTENCE)
                assert b.js("document.getElementById('text').value") == SENTENCE
                b.click("#go")
                shown = b.wait_js("(document.getElementById('prediction') || {}).textContent")
                bars = b.js("document.querySelectorAll('#bars .row').length")
                error = b.js("document.getElementById('error').textContent")
                os.makedirs(ARTIFACTS, exist_ok=True)
                png = base64.b64decode(b.send("Page.captureScreenshot", format="png")["data"])
                with open(os.path.join(ARTIFACTS, "page.png"), "wb") as f:
                    f.write(png)
            finally:
                b.close()
            assert error == "", error
            assert shown == expected, f"page shows {shown!r}, the API says {expected!r}"
            assert bars == 3, bars
            assert png.startswith(b"\x89PNG") and len(png) > 1000
            print(f"screenshot: {os.path.join(ARTIFACTS, 'page.png')}")
            assert s.stop() == 0


if __name__ == "__main__":
    if not CHROMIUM:
        if os.environ.get("CI"):
            sys.exit("FAIL: chromium is not installed (scripts/setup.sh installs it); CI must run this test")
        print("SKIP: chromium is not installed (run scripts/setup.sh)")
        sys.exit(SKIP)
    main(globals())
