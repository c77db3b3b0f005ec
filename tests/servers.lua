--- Real servers on loopback for the TLS and proxy specs: a throwaway CA and
-- certificates made with the openssl command, nginx (TLS, and plain HTTP) and
-- tinyproxy, each a child process with its configuration in a temporary
-- folder, on free ports, ended by the spec that started it (and, through a
-- watchdog, with the process that ran the spec if that dies first).
local core = require("pipeline.core")
local support = require("support")

local servers = {}

--- The path of program, or nil when it is not installed (nginx and
-- tinyproxy live in /usr/sbin, which a plain user's PATH may lack).
function servers.find(program)
  for _, path in ipairs({ support.which(program, ""), "/usr/sbin/" .. program, "/usr/bin/" .. program }) do
    if path ~= "" and support.execute("test -x " .. support.quote(path)) == 0 then return path end
  end
end

--- describe when every program of the list is installed, else one pending
-- test saying which is missing and what installs it (busted's describe and
-- pending are given: a module does not see the spec's globals).
function servers.describe_if_installed(programs, describe, pending)
  local missing = {}
  for _, program in ipairs(programs) do
    if not servers.find(program) then missing[#missing + 1] = program end
  end
  if #missing == 0 then return describe end
  return function(name)
    pending(("%s: skipped, %s not installed (scripts/install-deps installs it)")
      :format(name, table.concat(missing, " and ")))
  end
end

--- n free TCP ports on 127.0.0.1 (the kernel's choice; a server that then
-- fails to bind one is started again on others).
function servers.free_ports(n)
  local pipe = assert(io.popen(("python3 -c %s %d"):format(support.quote(
    "import socket, sys\n"
    .. "socks = [socket.socket() for _ in range(int(sys.argv[1]))]\n"
    .. "for s in socks: s.bind(('127.0.0.1', 0))\n"
    .. "print(' '.join(str(s.getsockname()[1]) for s in socks))"), n)))
  local line = pipe:read("*l")
  pipe:close()
  local ports = {}
  for port in (line or ""):gmatch("%d+") do ports[#ports + 1] = tonumber(port) end
  assert(#ports == n, "could not find free ports")
  return ports
end

------------------------------------------------------------ certificates

-- Makes, in dir: ca.pem (a throwaway CA) and capath/ (it, hashed), and for
-- each name a .pem and .key signed by the CA: good (127.0.0.1, 127.0.0.2 and
-- localhost), wrong_host (only wrong-host.example) and expired (the good
-- names, valid for one day in 2020).
local PKI_SCRIPT = [[
set -eu
cd "$1"
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key"; }
key ca
openssl req -x509 -key ca.key -out ca.pem -days 2 -subj "/CN=codearts-pipeline throwaway test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
leaf() { # name subjectAltName
  key "$1"
  openssl req -new -key "$1.key" -out "$1.csr" -subj "/CN=$1"
  printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$2" > "$1.ext"
}
leaf good "IP:127.0.0.1,IP:127.0.0.2,DNS:localhost"
openssl x509 -req -in good.csr -CA ca.pem -CAkey ca.key -set_serial 1 -days 2 -extfile good.ext -out good.pem
leaf wrong_host "DNS:wrong-host.example"
openssl x509 -req -in wrong_host.csr -CA ca.pem -CAkey ca.key -set_serial 2 -days 2 -extfile wrong_host.ext \
  -out wrong_host.pem
# openssl x509 has no end date in the past before OpenSSL 3.4 (-not_after);
# openssl ca takes one
leaf expired "IP:127.0.0.1,IP:127.0.0.2,DNS:localhost"
mkdir -p ca-db/new
: > ca-db/index.txt
echo 03 > ca-db/serial
cat > ca.cnf <<'CNF'
[ca]
default_ca = test
[test]
database = ca-db/index.txt
new_certs_dir = ca-db/new
serial = ca-db/serial
default_md = sha256
policy = any
[any]
commonName = supplied
CNF
openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in expired.csr -out expired.pem -notext \
  -startdate 20200101000000Z -enddate 20200102000000Z -extfile expired.ext
mkdir capath
cp ca.pem capath/
openssl rehash capath 2>/dev/null || c_rehash capath
]]

--- A throwaway PKI in a fresh folder: { dir, ca_file, ca_path, cert(name),
-- key(name) }; remove dir when done.
function servers.pki()
  local dir = support.temp_dir()
  local script = support.write_file(dir .. "/make-pki.sh", PKI_SCRIPT)
  local output, status = support.capture(("sh %s %s"):format(support.quote(script), support.quote(dir)))
  assert(status == 0, "making the test certificates failed:\n" .. output)
  return {
    dir = dir,
    ca_file = dir .. "/ca.pem",
    ca_path = dir .. "/capath",
    cert = function(name) return dir .. "/" .. name .. ".pem" end,
    key = function(name) return dir .. "/" .. name .. ".key" end,
  }
end

------------------------------------------------------------ processes

-- Starts argv (a list of words) in the background, its output to log; a
-- watchdog ends it when the process running the specs ends.  Returns its pid.
local function spawn(argv, log, dir)
  local words = {}
  for i, word in ipairs(argv) do words[i] = support.quote(word) end
  local pid_file = dir .. "/pid"
  -- $PPID, in the shell os.execute starts, is this process
  support.shell(("(%s >%s 2>&1 & server=$!; echo $server > %s; "
    .. "while kill -0 $PPID 2>/dev/null && kill -0 $server 2>/dev/null; do sleep 1; done; "
    .. "kill $server 2>/dev/null) >/dev/null 2>&1 </dev/null &")
    :format(table.concat(words, " "), support.quote(log), support.quote(pid_file)))
  local deadline = core.monotonic() + 5
  local text = support.read_file(pid_file)
  while not (text and text:match("%d+\n")) and core.monotonic() <= deadline do
    core.sleep(0.01)
    text = support.read_file(pid_file)
  end
  return assert(tonumber(text and text:match("%d+")), "no pid from " .. argv[1])
end

local function alive(pid)
  return support.execute(("kill -0 %d 2>/dev/null"):format(pid)) == 0
end

local function stop_process(pid)
  os.execute(("kill %d 2>/dev/null"):format(pid))
  local deadline = core.monotonic() + 5
  while core.monotonic() < deadline and alive(pid) do core.sleep(0.02) end
end

-- Waits (up to 10 s) until ready() is true while pid lives; returns whether.
local function wait_ready(pid, ready)
  local deadline = core.monotonic() + 10
  while core.monotonic() <= deadline and alive(pid) do
    if ready() then return true end
    core.sleep(0.02)
  end
  return false
end

------------------------------------------------------------ nginx

-- One server block: listens on 127.0.0.1 and 127.0.0.2 (loopback, but not a
-- name the transport keeps away from proxies), answers every request with
-- the API's success document.
local function server_block(port, tls)
  return ([[
  server {
    listen 127.0.0.1:%d%s;
    listen 127.0.0.2:%d%s;
%s    location / { return 200 '{"success":true}'; }
  }
]]):format(port, tls and " ssl" or "", port, tls and " ssl" or "",
    tls and ("    ssl_certificate %s;\n    ssl_certificate_key %s;\n"):format(tls.cert, tls.key) or "")
end

--- nginx (one process, no daemon) on loopback with a server per certificate
-- of pki (good, wrong_host, expired) and one of plain HTTP: { ports = {good,
-- wrong_host, expired, http}, access_log, stop() }.  Its access log has one
-- line per request: method, URI and the X-Auth-Token received.
function servers.nginx(pki)
  local nginx = assert(servers.find("nginx"), "nginx is not installed")
  local dir = support.temp_dir()
  support.shell("mkdir " .. support.quote(dir .. "/tmp"))
  for _ = 1, 5 do
    local p = servers.free_ports(4)
    local ports = { good = p[1], wrong_host = p[2], expired = p[3], http = p[4] }
    local blocks = {}
    for _, name in ipairs({ "good", "wrong_host", "expired" }) do
      blocks[#blocks + 1] = server_block(ports[name], { cert = pki.cert(name), key = pki.key(name) })
    end
    blocks[#blocks + 1] = server_block(ports.http, nil)
    support.write_file(dir .. "/nginx.conf", ([[
worker_processes 1;
master_process off;
daemon off;
pid %s/nginx.pid;
error_log %s/error.log info;
events { worker_connections 64; }
http {
  log_format requests '$request_method $request_uri token=$http_x_auth_token';
  access_log %s/access.log requests;
  client_body_temp_path %s/tmp;
  proxy_temp_path %s/tmp;
  fastcgi_temp_path %s/tmp;
  uwsgi_temp_path %s/tmp;
  scgi_temp_path %s/tmp;
  default_type application/json;
%s}
]]):format(dir, dir, dir, dir, dir, dir, dir, dir, table.concat(blocks)))
    local pid = spawn({ nginx, "-p", dir, "-c", dir .. "/nginx.conf", "-e", dir .. "/error.log" },
      dir .. "/output.log", dir)
    local probe = core.client({ timeout = 2 })
    local ready = wait_ready(pid, function()
      -- any answer at all (its body is not JSON: a failure carrying the status)
      local value, second, _, info = probe:request("GET", ("http://127.0.0.1:%d/ready"):format(ports.http))
      return (value ~= nil and second or info).status == 200
    end)
    probe:close()
    if ready then
      local log = dir .. "/access.log"
      local marks = 0
      return {
        dir = dir,
        ports = ports,
        access_log = log,
        --- The log's lines after its first before bytes, up to a marker
        -- request made now: nginx writes a line when it has answered, so
        -- every earlier request is in by the time the marker is.
        logged_since = function(before)
          marks = marks + 1
          local mark = ("GET /mark-%d "):format(marks)
          local client = core.client({ timeout = 5 })
          client:request("GET", ("http://127.0.0.1:%d/mark-%d"):format(ports.http, marks))
          client:close()
          local text, at
          local deadline = core.monotonic() + 5
          repeat
            text = support.read_file(log) or ""
            at = text:find(mark, before + 1, true)
            if not at then core.sleep(0.01) end
          until at or core.monotonic() > deadline
          assert(at, "nginx did not log the marker request")
          return text:sub(before + 1, at - 1)
        end,
        stop = function()
          stop_process(pid)
          support.remove(dir)
        end,
      }
    end
    stop_process(pid) -- a port taken in the meantime: again, on others
  end
  error("nginx did not start (see " .. dir .. "/error.log)")
end

------------------------------------------------------------ tinyproxy

--- tinyproxy (foreground) on 127.0.0.1, logging each connection and request
-- line: { port, url, log, read_log(), stop() }.
function servers.tinyproxy()
  local tinyproxy = assert(servers.find("tinyproxy"), "tinyproxy is not installed")
  local dir = support.temp_dir()
  local log = dir .. "/tinyproxy.log"
  for _ = 1, 5 do
    local port = servers.free_ports(1)[1]
    support.write_file(dir .. "/tinyproxy.conf", ([[
Port %d
Listen 127.0.0.1
Timeout 30
MaxClients 16
Allow 127.0.0.1
LogFile "%s"
LogLevel Info
]]):format(port, log))
    support.write_file(log, "")
    local pid = spawn({ tinyproxy, "-d", "-c", dir .. "/tinyproxy.conf" }, dir .. "/output.log", dir)
    if wait_ready(pid, function() return (support.read_file(log) or ""):find("Accepting connections", 1, true) end) then
      return {
        port = port,
        url = "http://127.0.0.1:" .. port,
        log = log,
        read_log = function() return support.read_file(log) or "" end,
        stop = function()
          stop_process(pid)
          support.remove(dir)
        end,
      }
    end
    stop_process(pid)
  end
  error("tinyproxy did not start (see " .. log .. ")")
end

return servers
