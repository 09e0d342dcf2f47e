// Command testjob is the one program in the test node's images: the Pod sandbox's pause process and the
// container that Job tests run. It is static (CGO_ENABLED=0) so the images need nothing but this file.
//
//	testjob                        wait for SIGTERM or SIGINT, then exit 0 (the pause image)
//	testjob exit CODE              exit with CODE at once
//	testjob sleep SECONDS [CODE]   sleep, then exit with CODE (default 0); a signal ends it with 128+signal
package main

import (
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"
)

func main() {
	// As PID 1 of its container the kernel ignores SIGTERM unless a handler is installed: without this a Pod
	// deletion would wait out its whole grace period.
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	args := os.Args[1:]
	if len(args) == 0 {
		<-stop
		os.Exit(0)
	}
	switch {
	case args[0] == "exit" && len(args) == 2:
		os.Exit(number(args[1]))
	case args[0] == "sleep" && (len(args) == 2 || len(args) == 3):
		code := 0
		if len(args) == 3 {
			code = number(args[2])
		}
		select {
		case <-time.After(time.Duration(number(args[1])) * time.Second):
			os.Exit(code)
		case sig := <-stop:
			os.Exit(128 + int(sig.(syscall.Signal)))
		}
	}
	fmt.Fprintln(os.Stderr, "usage: testjob | testjob exit CODE | testjob sleep SECONDS [CODE]")
	os.Exit(2)
}

func number(text string) int {
	n, err := strconv.Atoi(text)
	if err != nil || n < 0 {
		fmt.Fprintf(os.Stderr, "testjob: %q is not a non-negative integer\n", text)
		os.Exit(2)
	}
	return n
}
