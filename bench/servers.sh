# Sourced by scripts/bench: starts nginx on loopback in a temporary directory
# (one worker, not a daemon), answering PUT with {"success":true} over HTTP
# and over HTTPS with a throwaway CA made here.  Sets BENCH_DIR, BENCH_HTTP,
# BENCH_HTTPS (base URLs), BENCH_CA; stop_servers stops it.

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

start_servers() {
  BENCH_DIR=$(mktemp -d)
  local d=$BENCH_DIR
  mkdir -p "$d/tmp" "$d/logs"
  # A throwaway CA and a server certificate for 127.0.0.1, signed by it.
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=bench CA" \
    -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout "$d/server.key" -out "$d/server.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' > "$d/ext.cnf"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -extfile "$d/ext.cnf" -out "$d/server.pem" 2>/dev/null
  local http_port https_port
  http_port=$(free_port)
  https_port=$(free_port)
  cat > "$d/nginx.conf" <<CONF
daemon off;
worker_processes 1;
pid $d/nginx.pid;
error_log $d/logs/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $d/tmp/body;
  proxy_temp_path $d/tmp/proxy;
  fastcgi_temp_path $d/tmp/fastcgi;
  uwsgi_temp_path $d/tmp/uwsgi;
  scgi_temp_path $d/tmp/scgi;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  ssl_session_cache shared:bench:10m;
  ssl_protocols TLSv1.2 TLSv1.3;
  server {
    listen 127.0.0.1:$http_port;
    listen 127.0.0.1:$https_port ssl;
    ssl_certificate $d/server.pem;
    ssl_certificate_key $d/server.key;
    location / {
      default_type application/json;
      return 200 '{"success":true}';
    }
  }
}
CONF
  nginx -p "$d" -c "$d/nginx.conf" -e "$d/logs/error.log" &
  BENCH_NGINX_PID=$!
  BENCH_HTTP="http://127.0.0.1:$http_port"
  BENCH_HTTPS="https://127.0.0.1:$https_port"
  BENCH_CA="$d/ca.pem"
  local i
  for i in $(seq 1 100); do
    if curl -sf -X PUT --cacert "$BENCH_CA" "$BENCH_HTTPS/" >/dev/null 2>&1; then return 0; fi
    sleep 0.05
  done
  echo "bench: nginx did not start:" >&2
  cat "$d/logs/error.log" >&2
  return 1
}

stop_servers() {
  if [ -n "${BENCH_NGINX_PID:-}" ]; then
    kill "$BENCH_NGINX_PID" 2>/dev/null || true
    wait "$BENCH_NGINX_PID" 2>/dev/null || true
  fi
  [ -n "${BENCH_DIR:-}" ] && rm -rf "$BENCH_DIR"
}
