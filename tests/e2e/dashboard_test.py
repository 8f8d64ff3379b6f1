#!/usr/bin/python3
"""The web dashboard in headless Chromium (docs/dashboard.md).

Starts `warren cluster init` (mutual TLS, the default) on free loopback ports in a temp dir,
creates a service with a published port, logs in to the dashboard over HTTPS with a token from
`warren dashboard token` (Chromium trusts the cluster CA through an NSS database, or the
manager's key through --ignore-certificate-errors-spki-list when certutil is missing), opens
the service's page, starts a canary from the CLI and checks that the page shows the canary's
weight within 2 s of the step; checks that a read-only session's abort is refused (403); clicks
Abort, confirms, sees the deployment roll back and every answer on the published port come from
the stable revision again. Fails on any browser console error. Saves a screenshot in the
artifact directory.

Usage: dashboard_test.py WARREN WARREN_TESTAPP ARTIFACT_DIR
Exit 77 (ctest: skipped) when Chromium, chromedriver or python3-selenium is missing.
"""
import base64
import hashlib
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
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

    @property
    def ca_pem(self):
        return os.path.join(self.tls_root, "current", "current", "ca.pem")

    def https(self, method, path, cookie=None, body=None, headers=None):
        """One request to the dashboard over HTTPS, verified against the cluster CA."""
        ctx = ssl.create_default_context(cafile=self.ca_pem)
        conn = http.client.HTTPSConnection("127.0.0.1", self.http_port, context=ctx, timeout=10)
        try:
            h = dict(headers or {})
            if cookie:
                h["Cookie"] = cookie
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read().decode()
        finally:
            conn.close()

    def login(self, role):
        """A session of `role` from a token of `warren dashboard token`; its Cookie header."""
        token = self.cli("dashboard", "token", "--role", role, "--ttl", "10m", "-q").stdout.strip()
        status, headers, body = self.https(
            "POST", "/ui/api/login", body=json.dumps({"token": token}),
            headers={"X-Warren-Dashboard": "1", "Content-Type": "application/json"})
        assert status == 200, f"login as {role}: {status} {body}"
        cookie = dict(headers)["Set-Cookie"]
        for flag in ("Secure", "HttpOnly", "SameSite=Strict"):
            assert flag in cookie, f"session cookie without {flag}: {cookie}"
        return cookie.split(";")[0]

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

        # /metrics and the probes stay plain HTTP on the same port; the dashboard is HTTPS only.
        conn = http.client.HTTPConnection("127.0.0.1", cluster.http_port, timeout=10)
        conn.request("GET", "/metrics")
        assert conn.getresponse().status == 200, "plain /metrics"
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", cluster.http_port, timeout=10)
        conn.request("GET", "/ui/")
        resp = conn.getresponse()
        assert resp.status == 308 and resp.getheader("Location") == \
            f"https://127.0.0.1:{cluster.http_port}/ui/", (resp.status, resp.getheaders())
        conn.close()
        status, _, body = cluster.https("GET", "/ui/api/services")
        assert status == 401 and "log in first" in body, (status, body)

        # Chromium trusts the cluster CA: an NSS database in a HOME of the test's own.
        home = os.path.join(workdir, "browser-home")
        os.makedirs(home)
        env = dict(os.environ, HOME=home)
        options = webdriver.ChromeOptions()
        if shutil.which("certutil"):
            nssdb = os.path.join(home, ".pki", "nssdb")
            os.makedirs(nssdb)
            subprocess.run(["certutil", "-N", "-d", f"sql:{nssdb}", "--empty-password"],
                           check=True, capture_output=True)
            subprocess.run(["certutil", "-A", "-d", f"sql:{nssdb}", "-n", "warren-cluster-ca",
                            "-t", "C,,", "-i", cluster.ca_pem], check=True, capture_output=True)
            print("chromium trusts the cluster CA (NSS database)")
        else:
            # Without certutil (libnss3-tools): trust the manager's key alone.
            cert = os.path.join(workdir, "data", "tls", "current", "cert.pem")
            spki = subprocess.run(
                f"openssl x509 -in {cert} -pubkey -noout | openssl pkey -pubin -outform der",
                shell=True, check=True, capture_output=True).stdout
            pin = base64.b64encode(hashlib.sha256(spki).digest()).decode()
            options.add_argument(f"--ignore-certificate-errors-spki-list={pin}")
            print("certutil is missing: chromium trusts the manager's key by its SPKI hash")
        options.binary_location = CHROMIUM
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--window-size=1280,800", "--no-first-run", "--disable-extensions",
                    "--disable-background-networking", "--disable-sync"):
            options.add_argument(arg)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(service=ChromeService(executable_path=CHROMEDRIVER, env=env),
                                  options=options)
        driver.set_page_load_timeout(30)
        base = f"https://127.0.0.1:{cluster.http_port}/ui/"

        # Logged out: the login page.
        driver.get(base)
        wait_for("the login page", lambda: driver.find_element(By.ID, "login-token"))
        driver.save_screenshot(os.path.join(artifacts, "dashboard-login.png"))
        # The URL `warren dashboard token` prints logs in.
        printed = cluster.cli("dashboard", "token").stdout
        url = re.search(r"https://\S+#login=\S+", printed)
        assert url and url.group(0).startswith(base + "#login=wdt1."), printed
        driver.get(url.group(0))
        wait_for("the session's role in the header",
                 lambda: driver.find_element(By.ID, "session-role").text == "admin")
        assert "#login=" not in driver.current_url, "the token stayed in the address bar"
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
        reader = cluster.login("read-only")

        def history():
            status, _, body = cluster.https("GET", "/ui/api/services/web/history", cookie=reader)
            assert status == 200, (status, body)
            return json.loads(body)["samples"]
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

        # A read-only session sees the canary but may not abort it.
        status, _, body = cluster.https("POST", "/ui/api/services/web/abort", cookie=reader,
                                        headers={"X-Warren-Dashboard": "1"})
        assert status == 403 and "read-only" in json.loads(body)["error"], (status, body)
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
