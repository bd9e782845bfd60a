package runbook

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopWait bounds how long a background command may take to stop after
// SIGTERM before it is killed.
const stopWait = 15 * time.Second

// loopcard runs one loopcard command to its end, as the runbook writes it,
// and returns what it printed on stdout. Its stderr goes to the run's log;
// on failure the error carries the command's last lines of stderr.
func (r *runner) loopcard(ctx context.Context, args ...string) (string, error) {
	return r.loopcardIn(ctx, nil, args...)
}

// loopcardIn is loopcard with extra environment variables.
func (r *runner) loopcardIn(ctx context.Context, env []string, args ...string) (string, error) {
	r.show(args)
	cmd := r.command(ctx, env, args)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = io.MultiWriter(&stderr, r.log)
	err := cmd.Run()
	if err != nil {
		return stdout.String(), fmt.Errorf("loopcard %s: %w\n%s", strings.Join(args, " "), err, lastLines(stderr.String(), 8))
	}
	return stdout.String(), nil
}

// loopcardJSON runs a command that prints JSON (--json is added) and
// decodes its output into v.
func (r *runner) loopcardJSON(ctx context.Context, v any, args ...string) error {
	out, err := r.loopcard(ctx, append(args, "--json")...)
	if err != nil {
		return err
	}
	if err := jsonUnmarshal(out, v); err != nil {
		return fmt.Errorf("loopcard %s: %w", strings.Join(args, " "), err)
	}
	return nil
}

func jsonUnmarshal(s string, v any) error {
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return fmt.Errorf("output is not the JSON expected: %w", err)
	}
	return nil
}

func (r *runner) command(ctx context.Context, env []string, args []string) *exec.Cmd {
	full := append([]string{"--data-dir", r.cfg.DataDir}, args...)
	cmd := exec.CommandContext(ctx, r.cfg.Exe, full...)
	cmd.Env = append(append(os.Environ(), r.env...), env...)
	cmd.Dir = r.dir
	// A command's children die with it; Ctrl-C reaches the demo only.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = stopWait
	return cmd
}

// show prints the command as an operator would type it.
func (r *runner) show(args []string) {
	if r.cfg.Quiet {
		return
	}
	quoted := make([]string, len(args))
	for i, a := range args {
		if a == "" || strings.ContainsAny(a, " \t'\"$&;|<>()*?") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		quoted[i] = a
	}
	fmt.Fprintf(r.out, "   $ loopcard %s\n", strings.Join(quoted, " "))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// proc is a loopcard command that runs in the background (serve, reader
// serve, vcard, terminal pay) until it is stopped or ends by itself.
type proc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error

	mu    sync.Mutex
	lines []string    // stdout and stderr lines so far
	seen  chan string // each new line, for waiters; dropped when full
	out   bytes.Buffer
}

// background starts a command and returns at once.
func (r *runner) background(ctx context.Context, name string, args ...string) (*proc, error) {
	r.show(args)
	p := &proc{name: name, done: make(chan struct{}), seen: make(chan string, 4096)}
	p.cmd = r.command(context.WithoutCancel(ctx), nil, args)
	pr, pw := io.Pipe()
	p.cmd.Stdout = io.MultiWriter(pw, &p.out)
	p.cmd.Stderr = io.MultiWriter(pw, r.log)
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1<<20)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			p.mu.Unlock()
			select {
			case p.seen <- sc.Text():
			default:
			}
		}
	}()
	go func() {
		p.err = p.cmd.Wait()
		pw.Close()
		close(p.done)
	}()
	r.procs = append(r.procs, p)
	return p, nil
}

// waitFor waits until the command prints a line containing want, and
// returns that line.
func (p *proc) waitFor(ctx context.Context, want string, timeout time.Duration) (string, error) {
	return p.waitNth(ctx, 1, timeout, want)
}

// waitNth waits until the command has printed n lines that contain one of
// wants, and returns the n-th.
func (p *proc) waitNth(ctx context.Context, n int, timeout time.Duration, wants ...string) (string, error) {
	match := func(l string) bool {
		for _, w := range wants {
			if strings.Contains(l, w) {
				return true
			}
		}
		return false
	}
	want := strings.Join(wants, `" or "`)
	t := time.NewTimer(timeout)
	defer t.Stop()
	for {
		p.mu.Lock()
		seen := 0
		for _, l := range p.lines {
			if match(l) {
				seen++
				if seen == n {
					p.mu.Unlock()
					return l, nil
				}
			}
		}
		p.mu.Unlock()
		select {
		case <-p.seen:
		case <-p.done:
			// The last lines may still be on their way.
			time.Sleep(50 * time.Millisecond)
			p.mu.Lock()
			seen = 0
			for _, l := range p.lines {
				if match(l) {
					if seen++; seen == n {
						p.mu.Unlock()
						return l, nil
					}
				}
			}
			p.mu.Unlock()
			return "", fmt.Errorf("%s ended (%v) before printing %q:\n%s", p.name, p.err, want, p.tail())
		case <-t.C:
			return "", fmt.Errorf("%s did not print %q within %v:\n%s", p.name, want, timeout, p.tail())
		case <-ctx.Done():
			return "", ctx.Err()
		}
	}
}

func (p *proc) tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := max(0, len(p.lines)-8)
	return strings.Join(p.lines[n:], "\n")
}

// stdout is what the command printed on stdout so far.
func (p *proc) stdout() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// wait waits for the command to end by itself.
func (p *proc) wait(ctx context.Context, timeout time.Duration) error {
	select {
	case <-p.done:
		if p.err != nil {
			return fmt.Errorf("%s: %w\n%s", p.name, p.err, p.tail())
		}
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("%s did not finish within %v:\n%s", p.name, timeout, p.tail())
	case <-ctx.Done():
		return ctx.Err()
	}
}

// stop ends the command with SIGTERM, as Ctrl-C would, and waits for it.
// A command that ended by itself is not an error here; its own error is
// returned only when it failed before it was asked to stop.
func (p *proc) stop() error {
	select {
	case <-p.done:
		return p.exitErr()
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(stopWait):
		_ = p.cmd.Process.Kill()
		<-p.done
		return fmt.Errorf("%s did not stop within %v of SIGTERM; killed", p.name, stopWait)
	}
}

func (p *proc) exitErr() error {
	if p.err == nil {
		return nil
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) && ee.Exited() {
		return fmt.Errorf("%s: %w\n%s", p.name, p.err, p.tail())
	}
	return nil
}
