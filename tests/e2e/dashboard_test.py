#!/usr/bin/python3
"""The web dashboard in headless Chromium (docs/dashboard.md).

Starts `warren cluster init` on free loopback ports in a temp dir, creates a service with a
published port, opens /ui/ on its page, starts a canary from the CLI and checks that the page
shows the canary's weight within 2 s of the step; clicks Abort, confirms, sees the deployment
roll back and every answer on the published port come from the stable revision again. Fails
on any browser console error. Saves a screenshot in the artifact directory.

Usage: dashboard_test.py WARREN WARREN_TESTAPP ARTIFACT_DIR
Exit 77 (ctest: skipped) when Chromium, chromedriver or python3-selenium is missing.
"""
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

SKIP = 77


def skip(reason):
    print(f"SKIPPED: {reason}", flush=True)
    sys.exit(SKIP)


try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service as ChromeService
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
except ImportError:
    skip("python3-selenium is not installed (apt-get install python3-selenium)")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if not CHROMIUM or not CHROMEDRIVER:
    skip("chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, predicate, timeout=30.0, interval=0.1):
    """Polls predicate until it returns a true value; fails naming `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
            if last:
                return last
        except Exception as e:  # a not-yet-ready page or cluster
            last = e
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


class Cluster:
    def __init__(self, warren, testapp, workdir):
        self.warren = warren
        self.testapp = testapp
        self.workdir = workdir
        self.api = f"127.0.0.1:{free_port()}"
        self.http_port = free_port()
        self.publish_port = free_port()
        self.marker = f"WARREN_E2E_RUN={workdir}"
        octet = random.Random(os.getpid()).randrange(100, 200)
        self.log = open(os.path.join(workdir, "hybrid.log"), "w")
        self.proc = subprocess.Popen(
            [warren, "cluster", "init", "--data-dir", os.path.join(workdir, "data"),
             "--api-addr", self.api, "--metrics-addr", f"127.0.0.1:{self.http_port}",
             "--dns-addr", f"127.0.0.1:{free_port()}", "--node-name", "node-1",
             "--address-range", f"127.{octet}.0.0/16", "--stop-tasks-on-exit",
             "--tls-root", self.tls_root],
            stdout=self.log, stderr=subprocess.STDOUT)

    # Mutual TLS (the default) with an admin bundle of this run's own, not ~/.warren.
    @property
    def tls_root(self):
        return os.path.join(self.workdir, "home")

    def cli(self, *args, check=True):
        r = subprocess.run([self.warren, "--manager", self.api,
                            "--tls-dir", os.path.join(self.tls_root, "current"), *args],
                           capture_output=True,
                           text=True, timeout=60)
        if check and r.returncode != 0:
            raise AssertionError(f"warren {' '.join(args)}: exit {r.returncode}: {r.stderr}")
        return r

    def rollout(self):
        r = self.cli("service", "rollout", "status", "web", "-o", "json", check=False)
        return json.loads(r.stdout) if r.returncode == 0 else {}

    def get(self, path, timeout=2.0):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.publish_port}{path}",
                                    timeout=timeout) as resp:
            return resp.status, resp.read().decode()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        # Tasks carry the marker in their environment: any left behind (a node that died
        # before stopping them) are stopped here.
        marker = self.marker.encode()
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    if marker in f.read().split(b"\0"):
                        os.kill(int(pid), signal.SIGKILL)
            except (OSError, ProcessLookupError):
                pass


def main():
    if len(sys.argv) != 4:
        print(__doc__)
        return 2
    warren, testapp, artifacts = sys.argv[1:]
    os.makedirs(artifacts, exist_ok=True)
    workdir = tempfile.mkdtemp(prefix="warren-dashboard-e2e-")
    cluster = Cluster(warren, testapp, workdir)
    driver = None
    ok = False
    try:
        wait_for("the node to be ready", lambda: "NODE_STATE_READY" in cluster.cli(
            "node", "ls", "-o", "json", check=False).stdout)
        cluster.cli("service", "create", "web", "--command", testapp, "--replicas", "2",
                    "--health-http", "/healthz", "--health-interval", "200ms",
                    "--env", cluster.marker, "--env", "VERSION=v1", "--stop-timeout", "2s",
                    "--drain-timeout", "1s",
                    "--publish", f"127.0.0.1:{cluster.publish_port}:8080")
        wait_for("v1 to answer on the published port",
                 lambda: "version=v1" in cluster.get("/")[1])

        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,800", "--no-first-run", "--disable-extensions",
                    "--disable-background-networking", "--disable-sync"):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=ChromeService(executable_path=CHROMEDRIVER),
                                  options=options)
        driver.set_page_load_timeout(30)
        base = f"http://127.0.0.1:{cluster.http_port}/ui/"

        driver.get(base)
        wait_for("the services list to show web",
                 lambda: driver.find_element(By.CSS_SELECTOR, 'tr[data-service="web"]'))
        driver.get(base + "#/services/web")
        wait_for("the service page", lambda: driver.find_element(By.ID, "service-name").text == "web")
        wait_for("the live event stream", lambda: driver.find_element(By.ID, "live").text == "live")

        # A canary whose window is long enough that it stays on its first step until aborted.
        cluster.cli("service", "update", "web", "--detach", "--env", "VERSION=v2", "--strategy", "canary",
                    "--canary-steps", "25,50,100", "--canary-window", "10m",
                    "--min-requests", "1000000")
        wait_for("the canary to reach 25%", lambda: cluster.rollout().get("weight") == 25,
                 timeout=60, interval=0.05)
        step_seen = time.monotonic()
        wait_for("the page to show the canary weight 25%",
                 lambda: driver.find_element(By.ID, "dep-weight").text == "25%",
                 timeout=2.0, interval=0.05)
        print(f"page showed the step {time.monotonic() - step_seen:.2f}s after the CLI did")
        # The traffic table shows the new revision's share too.
        wait_for("the traffic table to show revision 2 at 25%", lambda: driver.find_element(
            By.CSS_SELECTOR, 'tr[data-revision="2"] td.weight').text == "25%", timeout=5)

        # A reload keeps the chart's history (the tab's session storage): revision 1's weight
        # line still has the step down from 100 %, which one fresh sample could not draw.
        driver.refresh()
        wait_for("the page again after a reload",
                 lambda: driver.find_element(By.ID, "dep-weight").text == "25%")
        points = wait_for("revision 1's weight line", lambda: driver.find_element(
            By.CSS_SELECTOR, '#deployment svg.chart polyline[data-revision="1"]').get_attribute(
                "points").split())
        # The chart's top (100 %) is at y=8 (app.js chart(): T).
        assert any(p.split(",")[1] == "8.0" for p in points), \
            f"the weight chart lost its history on reload: {points}"
        wait_for("the live event stream", lambda: driver.find_element(By.ID, "live").text == "live")

        # Some v2 answers through the published port (bounded: at most 200 requests, 20 s).
        seen_v2 = 0
        deadline = time.monotonic() + 20
        for _ in range(200):
            if seen_v2 >= 3 or time.monotonic() > deadline:
                break
            status, body = cluster.get("/")
            seen_v2 += status == 200 and "version=v2" in body
        assert seen_v2 >= 3, "the canary got no traffic through the published port"
        driver.save_screenshot(os.path.join(artifacts, "dashboard-canary.png"))

        # The manager's own samples: a tab opened now (no session storage) draws the canary's
        # history from before it was opened, every sample the manager has, within 5 s (the
        # tab alone would have 2 or 3 samples by then: one per redraw, every 3 s).
        def history():
            url = f"http://127.0.0.1:{cluster.http_port}/ui/api/services/web/history"
            with urllib.request.urlopen(url, timeout=2.0) as resp:
                return json.loads(resp.read().decode())["samples"]
        kept = wait_for("5 samples in the manager's history", lambda: len(history()) >= 5 and
                        len(history()))
        driver.execute_script("sessionStorage.clear()")
        driver.refresh()
        wait_for("the page again with the manager's history", lambda: len(driver.find_element(
            By.CSS_SELECTOR, '#deployment svg.chart polyline[data-revision="1"]').get_attribute(
                "points").split()) >= kept, timeout=5.0)

        # Keyboard: Enter on a focused action opens the dialog with Cancel focused; Escape
        # closes it and nothing happens.
        # (The page redraws during a rollout: an element found before a redraw is stale and
        # the step is tried again; a stale element gets no key.)
        def press_enter_on_pause():
            pause = driver.find_element(By.ID, "action-pause")
            driver.execute_script("arguments[0].focus()", pause)
            pause.send_keys(Keys.ENTER)
            return True
        wait_for("Enter on the Pause button", press_enter_on_pause, timeout=10)
        dialog = driver.find_element(By.ID, "confirm")
        wait_for("the dialog from the keyboard", lambda: dialog.get_attribute("open") is not None)
        assert driver.switch_to.active_element.get_attribute("id") == "confirm-cancel"
        driver.switch_to.active_element.send_keys(Keys.ESCAPE)
        wait_for("the dialog to close", lambda: dialog.get_attribute("open") is None, timeout=5)
        assert cluster.rollout().get("phase") == "DEPLOYMENT_PHASE_PROGRESSING", cluster.rollout()

        def click_abort():
            driver.find_element(By.ID, "action-abort").click()
            return True
        wait_for("a click on Abort", click_abort, timeout=10)
        wait_for("the confirmation dialog",
                 lambda: driver.find_element(By.ID, "confirm").get_attribute("open") is not None)
        driver.find_element(By.ID, "confirm-ok").click()
        wait_for("the page to show the rollback", lambda: driver.find_element(
            By.ID, "dep-phase").text in ("rolled-back",), timeout=60, interval=0.1)
        assert cluster.rollout().get("phase") == "DEPLOYMENT_PHASE_ROLLED_BACK", cluster.rollout()

        # Every answer from the stable revision again (bounded: 50 requests, 20 s).
        wait_for("revision 1 to take all traffic",
                 lambda: "version=v1" in cluster.get("/")[1], timeout=20)
        deadline = time.monotonic() + 20
        answers = []
        for _ in range(50):
            if time.monotonic() > deadline:
                break
            answers.append(cluster.get("/"))
        bad = [a for a in answers if a[0] != 200 or "version=v1" not in a[1]]
        assert len(answers) == 50 and not bad, f"after the abort: {bad[:3]} of {len(answers)}"

        driver.save_screenshot(os.path.join(artifacts, "dashboard.png"))

        # Phone width: the pages fit without sideways scrolling of the whole page (wide tables
        # scroll inside their own box).
        driver.set_window_size(390, 844)
        for page in ("#/services", "#/services/web", "#/nodes", "#/events"):
            driver.get(base + page)
            wait_for(f"{page} to render", lambda: driver.find_element(By.TAG_NAME, "h1"))
            overflow = driver.execute_script(
                "return document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{page} is {overflow}px wider than a phone screen"
        driver.save_screenshot(os.path.join(artifacts, "dashboard-phone.png"))

        # Over the whole run, every page included.
        errors = [e for e in driver.get_log("browser") if e.get("level") == "SEVERE"]
        assert not errors, f"browser console errors: {errors}"
        ok = True
        print("PASSED: dashboard e2e", flush=True)
    finally:
        if driver is not None:
            if not ok:
                try:
                    driver.save_screenshot(os.path.join(artifacts, "dashboard-failure.png"))
                    print("browser log:", driver.get_log("browser"))
                except Exception:
                    pass
            driver.quit()
        cluster.stop()
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            print(f"cluster log and data kept in {workdir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
