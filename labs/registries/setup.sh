#!/bin/bash
# On node2, forward localhost:5000 to the registry that the learner runs on
# node1:5000. Docker engines use plain HTTP only with registries on localhost
# (or ones they are started with --insecure-registry for); a real registry
# serves TLS. The forwarder waits for nothing: it connects when asked.
set -e
start-dockerd --wait 60
cat > /usr/local/sbin/forward-registry <<'PY'
#!/usr/bin/python3
"""localhost:5000 -> node1:5000, byte for byte."""
import socket, socketserver, threading

def pipe(src, dst):
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass

class Forward(socketserver.BaseRequestHandler):
    def handle(self):
        try:
            upstream = socket.create_connection(("node1", 5000), timeout=10)
        except OSError:
            return
        upstream.settimeout(None)
        back = threading.Thread(target=pipe, args=(upstream, self.request), daemon=True)
        back.start()
        pipe(self.request, upstream)
        back.join()
        upstream.close()

class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True

Server(("127.0.0.1", 5000), Forward).serve_forever()
PY
chmod +x /usr/local/sbin/forward-registry
if ! (exec 3<>/dev/tcp/127.0.0.1/5000) 2>/dev/null; then
    setsid /usr/local/sbin/forward-registry </dev/null >/var/log/forward-registry.log 2>&1 &
fi
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/5000) 2>/dev/null && break; sleep 0.1; done
(exec 3<>/dev/tcp/127.0.0.1/5000) 2>/dev/null || { cat /var/log/forward-registry.log; exit 1; }
echo "node2: localhost:5000 leads to node1:5000"
