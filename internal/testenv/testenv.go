// Package testenv starts real protocol peers for tests — a throwaway
// redis-server, or a three-master Redis Cluster — on free local ports, and
// stops them when the test ends. Tests talk to the real thing instead of a
// fake, so that they exercise the protocol, the scripts and the failures the
// production code meets.
//
// When redis-server is not installed, a test that needs it is skipped with a
// message saying how to install it, except under CI=true, where it fails:
// CI must not turn green by skipping the store's tests.
package testenv

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// startTimeout bounds how long a redis-server may take to answer PING.
const startTimeout = 10 * time.Second

var loud sync.Once

// need returns the path of the named binary, or ends the test: skipped with
// a loud message when it is missing, failed under CI=true.
func need(t testing.TB, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	msg := fmt.Sprintf("%s not found in PATH: the Redis store's tests run against a real Redis. "+
		"Install it with `apt-get install redis-server` (Debian/Ubuntu) or `brew install redis` (macOS)", name)
	if os.Getenv("CI") == "true" {
		t.Fatalf("testenv: %s (CI=true: failing instead of skipping)", msg)
	}
	loud.Do(func() { fmt.Fprintf(os.Stderr, "\n*** testenv: SKIPPING REDIS TESTS: %s ***\n\n", msg) })
	t.Skipf("SKIPPED: %s", msg)
	return ""
}

// RedisServer starts a redis-server without persistence on a free port of
// 127.0.0.1, returns its address, and stops it when the test ends.
func RedisServer(t testing.TB) string {
	t.Helper()
	return StartRedis(t, RedisConfig{}).Addr
}

// RedisConfig varies the server StartRedis starts.
type RedisConfig struct {
	// Persist turns on the append-only file with an fsync per write
	// (--appendonly yes --appendfsync always), so that a Stop, which kills
	// the server like a crash, loses no acknowledged write.
	Persist bool
	// TLS makes the server speak TLS only, with a certificate for
	// 127.0.0.1 signed by a CA made for the test (Redis.CAFile).
	TLS bool
	// Args are more redis-server arguments, e.g. "--requirepass", "secret".
	Args []string

	cluster bool
}

// Redis is a redis-server started by StartRedis.
type Redis struct {
	Addr   string // 127.0.0.1:port
	Dir    string // its working directory: AOF, nodes.conf, redis.log, certificates
	CAFile string // with TLS: the PEM of the CA that signed its certificate

	path string
	args []string
	tls  *tls.Config // to dial it, with TLS

	// Owned by the test goroutine.
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has exited and been reaped
}

// StartRedis starts a redis-server as cfg says, on a free port in a
// temporary directory, and stops it when the test ends.
func StartRedis(t testing.TB, cfg RedisConfig) *Redis {
	t.Helper()
	r := &Redis{path: need(t, "redis-server"), Dir: t.TempDir()}
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var port int
		if port, err = freePort(cfg.cluster); err != nil {
			continue
		}
		r.configure(t, cfg, port)
		if err = r.start(); err == nil {
			break
		}
		if !errors.Is(err, errExited) {
			break
		}
		// Most likely another process took the port meanwhile: try another.
	}
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(r.kill)
	return r
}

func (r *Redis) configure(t testing.TB, cfg RedisConfig, port int) {
	r.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	r.args = []string{"--bind", "127.0.0.1", "--save", "", "--dir", r.Dir, "--logfile", "", "--daemonize", "no"}
	if cfg.TLS {
		if r.tls == nil {
			r.tls = makeCerts(t, r.Dir)
			r.CAFile = filepath.Join(r.Dir, "ca.pem")
		}
		r.args = append(r.args, "--port", "0", "--tls-port", strconv.Itoa(port),
			"--tls-cert-file", filepath.Join(r.Dir, "server.pem"), "--tls-key-file", filepath.Join(r.Dir, "server.key"),
			"--tls-ca-cert-file", r.CAFile, "--tls-auth-clients", "no")
	} else {
		r.args = append(r.args, "--port", strconv.Itoa(port))
	}
	if cfg.Persist {
		r.args = append(r.args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		r.args = append(r.args, "--appendonly", "no")
	}
	if cfg.cluster {
		r.args = append(r.args, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "5000")
	}
	r.args = append(r.args, cfg.Args...)
}

var errExited = errors.New("redis-server exited")

// start runs the server and waits until it answers PING.
func (r *Redis) start() error {
	log, err := os.OpenFile(filepath.Join(r.Dir, "redis.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	cmd := exec.Command(r.path, r.args...)
	cmd.Dir = r.Dir
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", r.path, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	r.cmd, r.done = cmd, done
	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-done:
			r.cmd = nil
			return fmt.Errorf("%w at start (%s %s): %s", errExited, r.path, strings.Join(r.args, " "), r.logTail())
		default:
		}
		if reply, err := r.Do("PING"); err == nil && !strings.HasPrefix(reply, "-LOADING") {
			return nil // +PONG, or -NOAUTH: it serves
		}
		if time.Now().After(deadline) {
			r.kill()
			return fmt.Errorf("redis-server at %s did not answer PING within %v: %s", r.Addr, startTimeout, r.logTail())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (r *Redis) logTail() string {
	b, _ := os.ReadFile(filepath.Join(r.Dir, "redis.log"))
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return "log: " + string(b)
}

// kill stops the process the hard way and reaps it.
func (r *Redis) kill() {
	if r.cmd == nil {
		return
	}
	_ = r.cmd.Process.Kill()
	<-r.done
	r.cmd = nil
}

// Stop kills the server (SIGKILL, like a crash or a power cut) and waits
// for it to exit. Clients then get connection errors.
func (r *Redis) Stop(t testing.TB) {
	t.Helper()
	r.kill()
}

// Start starts a stopped server again, on the same port and directory (so
// with Persist it reloads its data), and waits until it answers.
func (r *Redis) Start(t testing.TB) {
	t.Helper()
	if r.cmd != nil {
		t.Fatalf("testenv: redis-server at %s is already running", r.Addr)
	}
	if err := r.start(); err != nil {
		t.Fatalf("testenv: restart: %v", err)
	}
}

// Restart is Stop then Start.
func (r *Redis) Restart(t testing.TB) {
	t.Helper()
	r.Stop(t)
	r.Start(t)
}

// Do sends one command on a new connection and returns the reply in RESP
// form for simple strings, errors and integers ("+OK", "-ERR …", ":1"), or
// the content of a bulk string. It is for setting servers up, not for the
// code under test.
func (r *Redis) Do(args ...string) (string, error) {
	return do(r.Addr, r.tls, args...)
}

func do(addr string, tc *tls.Config, args ...string) (string, error) {
	d := &net.Dialer{Timeout: time.Second}
	var (
		conn net.Conn
		err  error
	)
	if tc != nil {
		conn, err = tls.DialWithDialer(d, "tcp", addr, tc)
	} else {
		conn, err = d.Dial("tcp", addr)
	}
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return "", err
	}
	br := bufio.NewReader(conn)
	line, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimRight(line, "\r\n")
	if !strings.HasPrefix(line, "$") {
		return line, nil
	}
	n, err := strconv.Atoi(line[1:])
	if err != nil || n < 0 {
		return "", err
	}
	buf := make([]byte, n+2)
	if _, err := io.ReadFull(br, buf); err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// freePort returns a port of 127.0.0.1 that was free a moment ago. For a
// cluster node, port+10000 (its cluster bus) must be free too.
func freePort(cluster bool) (int, error) {
	for range 50 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		if !cluster {
			l.Close()
			return port, nil
		}
		if port+10000 > 65535 {
			l.Close()
			continue
		}
		bus, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+10000)))
		l.Close()
		if err != nil {
			continue
		}
		bus.Close()
		return port, nil
	}
	return 0, errors.New("no free port pair for a cluster node")
}

// RedisCluster starts a Redis Cluster of three masters without replicas on
// free ports, waits until every node reports cluster_state:ok, and returns
// the nodes' addresses. The nodes stop when the test ends.
func RedisCluster(t testing.TB) []string {
	t.Helper()
	need(t, "redis-server")
	cli := need(t, "redis-cli")
	var addrs []string
	for range 3 {
		addrs = append(addrs, StartRedis(t, RedisConfig{cluster: true}).Addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	args := append([]string{"--cluster", "create"}, addrs...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		t.Fatalf("testenv: redis-cli %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	deadline := time.Now().Add(startTimeout)
	for _, a := range addrs {
		for {
			info, err := do(a, nil, "CLUSTER", "INFO")
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("testenv: cluster node %s not ok within %v: %q %v", a, startTimeout, info, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	return addrs
}

// makeCerts writes a CA (ca.pem) and a server certificate for 127.0.0.1 and
// localhost (server.pem, server.key) into dir, and returns a client config
// that trusts the CA.
func makeCerts(t testing.TB, dir string) *tls.Config {
	t.Helper()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "leadpulse test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", "CERTIFICATE", caDER)
	write("server.pem", "CERTIFICATE", der)
	write("server.key", "EC PRIVATE KEY", keyDER)
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

var loudTools sync.Map

// Need returns the path of the named binary (a browser, Prometheus), or
// ends the test: skipped with a loud message saying how to install it
// (`apt-get install pkg`; scripts/install-test-deps.sh does it as root),
// failed under CI=true, where CI must not turn green by skipping.
func Need(t testing.TB, name, pkg string) string {
	t.Helper()
	if path, err := exec.LookPath(name); err == nil {
		return path
	}
	msg := fmt.Sprintf("%s not found in PATH: install it with `apt-get install %s` (make test runs scripts/install-test-deps.sh, which does as root)", name, pkg)
	if os.Getenv("CI") == "true" {
		t.Fatalf("testenv: %s (CI=true: failing instead of skipping)", msg)
	}
	if _, dup := loudTools.LoadOrStore(name, true); !dup {
		fmt.Fprintf(os.Stderr, "\n*** testenv: SKIPPING TESTS THAT NEED %s: %s ***\n\n", strings.ToUpper(name), msg)
	}
	t.Skipf("SKIPPED: %s", msg)
	return ""
}
