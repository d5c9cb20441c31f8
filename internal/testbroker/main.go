// Command testbroker runs franz-go's kfake as a Kafka broker of its own
// process, for tests that kill leadpulse processes and need the broker to
// outlive them (cmd/leadpulse's chaos test). It listens on 127.0.0.1:PORT
// (0: a free port), prints "listening ADDR" on stdout once it serves, and
// runs until SIGTERM or SIGINT. It keeps everything in memory: it is meant
// to stay up for one test, never to be restarted.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	port := flag.Int("port", 0, "port on 127.0.0.1; 0 picks a free one")
	flag.Parse()
	c, err := kfake.NewCluster(
		kfake.NumBrokers(1),
		kfake.Ports(*port),
		kfake.GroupMinSessionTimeout(100*time.Millisecond), // tests evict killed members within seconds
	)
	if err != nil {
		fmt.Fprintln(os.Stderr, "testbroker:", err)
		os.Exit(1)
	}
	fmt.Println("listening", c.ListenAddrs()[0])
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	c.Close()
}
