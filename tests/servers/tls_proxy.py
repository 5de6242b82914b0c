#!/usr/bin/env python3
"""A TLS terminator in front of a plain-HTTP S3 server, for the HTTPS tests.

    tls_proxy.py UPSTREAM_URL CERT KEY [--client-ca FILE] [--max-tls 1.1]

Listens on a free port of 127.0.0.1 and prints it on the first line of stdout. Each connection
is accepted with TLS (certificate chain CERT, private key KEY) and its bytes are passed both ways
to the upstream server. With --client-ca, a client certificate issued by that authority is
required. With --max-tls 1.1, the server offers TLS 1.0 and 1.1 only (which floe refuses).
A handshake that fails closes the connection; the proxy keeps serving others.
"""

import argparse
import socket
import ssl
import sys
import threading
import urllib.parse


def pump(src, dst):
    try:
        while True:
            data = src.recv(65536)
            if not data:
                break
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(conn, ctx, upstream):
    try:
        tls = ctx.wrap_socket(conn, server_side=True)
    except (ssl.SSLError, OSError):
        conn.close()
        return
    try:
        up = socket.create_connection(upstream)
    except OSError:
        tls.close()
        return
    threading.Thread(target=pump, args=(up, tls), daemon=True).start()
    pump(tls, up)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("upstream")
    p.add_argument("cert")
    p.add_argument("key")
    p.add_argument("--client-ca")
    p.add_argument("--max-tls")
    a = p.parse_args()
    url = urllib.parse.urlsplit(a.upstream)
    upstream = (url.hostname, url.port or 80)

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)
    if a.client_ca:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(a.client_ca)
    if a.max_tls == "1.1":
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.maximum_version = ssl.TLSVersion.TLSv1_1

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    print(listener.getsockname()[1], flush=True)
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn, ctx, upstream), daemon=True).start()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        sys.exit(0)
