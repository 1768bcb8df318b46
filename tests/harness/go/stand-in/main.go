// Command stand-in plays Penpot's processes, and Loki, on the test cluster's real node
// (tests/harness/node.sh). These are STAND-INS, not Penpot: Penpot's JVM backend and its Node
// exporter cannot be built or fetched on this machine. Each keeps the side of the contract the
// operator relies on, so the operator's pods are tested against something that behaves:
//
//	stand-in backend      /opt/penpot/backend/run.sh execs it: the backend's port 6060 (closed
//	                      while "the JVM starts", /readyz 503 while "migrating", then 200; /api;
//	                      a WebSocket at /ws/notifications) and the PREPL on 127.0.0.1:6063,
//	                      speaking Penpot's JSON-lines protocol for the profile commands
//	node app.js           installed as /opt/node/bin/node: the exporter's port 6061 with /readyz
//	stand-in loki         a receiver for Loki's push API that prints what it receives
//
// The mode is the program's name, or the first argument when it is called stand-in.
package main

import (
	"bufio"
	"compress/gzip"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

func main() {
	mode, args := filepath.Base(os.Args[0]), os.Args[1:]
	if mode == "stand-in" && len(args) > 0 {
		mode, args = args[0], args[1:]
	}
	switch mode {
	case "backend":
		backend(args)
	case "node":
		exporter(args)
	case "loki":
		loki(args)
	default:
		fmt.Fprintf(os.Stderr, "stand-in: unknown mode %q (backend, node, loki)\n", mode)
		os.Exit(2)
	}
}

// facts prints how the process was started, for the tests to read in `kubectl logs`.
func facts(extra string) {
	cwd, _ := os.Getwd()
	fmt.Printf("facts uid=%d gid=%d cwd=%s home=%s %s\n", os.Getuid(), os.Getgid(), cwd, os.Getenv("HOME"), extra)
}

func standIn(name string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Stand-In", name)
		next.ServeHTTP(w, r)
	})
}

func fatal(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "stand-in: "+format+"\n", args...)
	os.Exit(1)
}

// backend plays Penpot's JVM backend. Its timeline is the real one's in small: nothing listens
// while the JVM starts, then /readyz fails while migrations run, then it is ready.
func backend(args []string) {
	fs := flag.NewFlagSet("backend", flag.ExitOnError)
	starting := fs.Duration("starting", 6*time.Second, "how long the port stays closed")
	migrating := fs.Duration("migrating", 6*time.Second, "how long /readyz answers 503 after that")
	_ = fs.Parse(args)
	database := "unset"
	if os.Getenv("PENPOT_DATABASE_URI") != "" {
		database = "set"
	}
	facts("database=" + database)
	// spec.caBundle: the JVM would load this store; say whether the init container left it.
	for _, option := range strings.Fields(os.Getenv("JAVA_TOOL_OPTIONS")) {
		if path, ok := strings.CutPrefix(option, "-Djavax.net.ssl.trustStore="); ok {
			if info, err := os.Stat(path); err == nil {
				fmt.Printf("truststore %s %d bytes\n", path, info.Size())
			} else {
				fmt.Printf("truststore %s missing: %v\n", path, err)
			}
		}
	}
	if f, err := os.Create("written-by-backend"); err == nil {
		f.Close()
		fmt.Println("root writable")
	} else {
		fmt.Println("root read-only")
	}
	go prepl()
	time.Sleep(*starting)
	readyAt := time.Now().Add(*migrating)
	fmt.Println("listening on :6060, migrating")
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if time.Now().Before(readyAt) {
			http.Error(w, "migrating", http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"stand-in": "backend", "method": r.Method, "path": r.URL.Path})
	})
	mux.HandleFunc("/ws/notifications", websocket)
	// Filesystem storage, as Penpot keeps it: a file per object under the storage directory at
	// <id[0:2]>/<id[2:4]>/<id[4:]>, read back by nginx after a 204 with X-Accel-Redirect.
	// Uploads here are a plain PUT (Penpot's own go through its RPC API).
	assets := os.Getenv("PENPOT_OBJECTS_STORAGE_FS_DIRECTORY")
	objectPath := func(w http.ResponseWriter, id string) (string, bool) {
		if assets == "" || len(id) < 5 || strings.Trim(id, "0123456789abcdef") != "" {
			http.Error(w, "no filesystem storage, or not a hex id", http.StatusNotFound)
			return "", false
		}
		return filepath.Join(id[:2], id[2:4], id[4:]), true
	}
	mux.HandleFunc("/api/stand-in/objects/", func(w http.ResponseWriter, r *http.Request) {
		rel, ok := objectPath(w, strings.TrimPrefix(r.URL.Path, "/api/stand-in/objects/"))
		if !ok || r.Method != http.MethodPut {
			return
		}
		file := filepath.Join(assets, rel)
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		if err := os.WriteFile(file, body, 0o644); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		fmt.Printf("stored %s (%d bytes)\n", file, len(body))
		w.WriteHeader(http.StatusCreated)
	})
	mux.HandleFunc("/assets/by-file-media-id/", func(w http.ResponseWriter, r *http.Request) {
		if rel, ok := objectPath(w, strings.TrimPrefix(r.URL.Path, "/assets/by-file-media-id/")); ok {
			w.Header().Set("X-Accel-Redirect", "/internal/assets/"+rel)
			w.WriteHeader(http.StatusNoContent)
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "backend stand-in\n") })
	if err := http.ListenAndServe(":6060", standIn("backend", mux)); err != nil {
		fatal("backend: %v", err)
	}
}

// websocket completes the RFC 6455 handshake and sends one text frame, so a test sees that
// nginx passed the upgrade through.
func websocket(w http.ResponseWriter, r *http.Request) {
	key := r.Header.Get("Sec-WebSocket-Key")
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || key == "" {
		http.Error(w, "expected a WebSocket upgrade", http.StatusBadRequest)
		return
	}
	conn, buf, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	fmt.Fprintf(buf, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Accept: %s\r\nX-Stand-In: backend\r\n\r\n", base64.StdEncoding.EncodeToString(sum[:]))
	text := "notifications stand-in"
	buf.Write([]byte{0x81, byte(len(text))})
	buf.WriteString(text)
	buf.Flush()
	time.Sleep(time.Second)
}

// The PREPL, as Penpot 2.8+ speaks it (backend/src/app/srepl.clj): one JSON request per
// line, {"cmd": NAME, "params": {...}} with camelCase keys; each answered with a line of
// printed text (tag "out") and a "ret" line holding "val" or "err" {hint, code, type}. It
// keeps the profiles it made, so a second create is refused as the real backend refuses it.
// Emails starting with "hang" are never answered; "flood" is answered with 1 MiB of printed
// lines first; "down" closes the connection unanswered, as a backend that goes away does.
type request struct {
	Cmd    string `json:"cmd"`
	Params struct {
		Email    string  `json:"email"`
		Fullname *string `json:"fullname"`
		Password *string `json:"password"`
		IsActive *bool   `json:"isActive"`
		Soft     bool    `json:"soft"`
	} `json:"params"`
}

type profile struct {
	fullname string
	active   bool
}

func prepl() {
	ln, err := net.Listen("tcp", "127.0.0.1:6063")
	if err != nil {
		fatal("prepl: %v", err)
	}
	var mu sync.Mutex
	profiles := map[string]*profile{}
	for {
		conn, err := ln.Accept()
		if err != nil {
			continue
		}
		go func() {
			defer conn.Close()
			lines := bufio.NewScanner(conn)
			out := json.NewEncoder(conn)
			for lines.Scan() {
				var req request
				if err := json.Unmarshal(lines.Bytes(), &req); err != nil {
					continue // the real PREPL logs "unable to decode data" and reads on
				}
				email := req.Params.Email
				switch {
				case strings.HasPrefix(email, "down"):
					return
				case strings.HasPrefix(email, "hang"):
					time.Sleep(time.Hour)
				case strings.HasPrefix(email, "flood"):
					junk := strings.Repeat("x", 1<<16)
					for i := 0; i < 16; i++ {
						out.Encode(map[string]string{"tag": "out", "val": junk})
					}
				}
				mu.Lock()
				val, refusal := run(profiles, &req)
				mu.Unlock()
				tag := "ret"
				if refusal != "" {
					tag = "err"
				}
				// What the backend's log would show: never the password.
				fmt.Printf("prepl: %s %s %s -> %s\n", req.Cmd, email, changes(&req), tag)
				out.Encode(map[string]string{"tag": "out", "val": "stand-in prepl\n"})
				if refusal != "" {
					out.Encode(map[string]any{"tag": "ret", "err": map[string]string{"type": "validation", "code": refusal, "hint": refusal}})
				} else {
					out.Encode(map[string]any{"tag": "ret", "val": val})
				}
			}
		}()
	}
}

// run plays one command of backend/src/app/srepl/cli.clj: its value, or the code of a refusal.
func run(profiles map[string]*profile, req *request) (any, string) {
	p := req.Params
	switch req.Cmd {
	case "create-profile":
		if _, ok := profiles[p.Email]; ok {
			return nil, "email-already-exists"
		}
		if p.Password == nil || *p.Password == "" || p.Fullname == nil {
			return nil, "invalid-data"
		}
		active := p.IsActive == nil || *p.IsActive
		profiles[p.Email] = &profile{*p.Fullname, active}
		return map[string]string{"email": p.Email, "id": fmt.Sprintf("%08x-stand-in", time.Now().UnixNano()&0xffffffff)}, ""
	case "update-profile":
		found, ok := profiles[p.Email]
		if !ok {
			return false, ""
		}
		if p.Fullname != nil {
			found.fullname = *p.Fullname
		}
		if p.IsActive != nil {
			found.active = *p.IsActive
		}
		return true, ""
	case "delete-profile":
		_, ok := profiles[p.Email]
		delete(profiles, p.Email)
		return ok, ""
	}
	return nil, "not-implemented"
}

// changes names what a request sets, for the log line.
func changes(req *request) string {
	var parts []string
	if req.Params.Fullname != nil {
		parts = append(parts, "fullname="+*req.Params.Fullname)
	}
	if req.Params.Password != nil {
		parts = append(parts, "password")
	}
	if req.Params.IsActive != nil {
		parts = append(parts, fmt.Sprintf("active=%v", *req.Params.IsActive))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// exporter plays `node app.js` in /opt/penpot/exporter: port 6061, ready at once.
func exporter(args []string) {
	script := "none"
	if len(args) > 0 {
		script = args[0]
	}
	internal := os.Getenv("PENPOT_INTERNAL_URI")
	if internal == "" {
		internal = "unset"
	}
	facts("script=" + script + " internal_uri=" + internal)
	mux := http.NewServeMux()
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "exporter stand-in\n") })
	if err := http.ListenAndServe(":6061", standIn("exporter", mux)); err != nil {
		fatal("exporter: %v", err)
	}
}

// loki receives Loki's push API (JSON, optionally gzip-compressed, as Pebble sends it) and
// prints one line per log entry: `loki {labels} line`.
func loki(args []string) {
	fs := flag.NewFlagSet("loki", flag.ExitOnError)
	listen := fs.String("listen", ":3100", "address to listen on")
	_ = fs.Parse(args)
	type push struct {
		Streams []struct {
			Stream map[string]string `json:"stream"`
			Values [][]string        `json:"values"`
		} `json:"streams"`
	}
	var mu sync.Mutex
	mux := http.NewServeMux()
	mux.HandleFunc("/ready", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ready\n") })
	mux.HandleFunc("/loki/api/v1/push", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		var body io.Reader = r.Body
		if r.Header.Get("Content-Encoding") == "gzip" {
			z, err := gzip.NewReader(r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			body = z
		}
		var p push
		if err := json.NewDecoder(body).Decode(&p); err != nil {
			http.Error(w, "not a JSON push request: "+err.Error(), http.StatusBadRequest)
			return
		}
		mu.Lock()
		for _, s := range p.Streams {
			labels, _ := json.Marshal(s.Stream)
			for _, v := range s.Values {
				if len(v) == 2 {
					fmt.Printf("loki %s %s\n", labels, strings.TrimRight(v[1], "\n"))
				}
			}
		}
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	fmt.Printf("loki stand-in listening on %s\n", *listen)
	if err := http.ListenAndServe(*listen, mux); err != nil {
		fatal("loki: %v", err)
	}
}
