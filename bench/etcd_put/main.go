// etcd_put: SET-equivalent load on etcd through etcd's own Go client (clientv3, gRPC),
// the way etcd's tools/benchmark `put` drives it (that tool is not packaged by Debian):
// CONNS gRPC connections shared by CLIENTS goroutines, each doing one Put at a time
// until DURATION has passed; a Put counts once etcd acknowledged it (committed by a
// majority, fsynced). Redis's "-c 50 -P 16" has 16 requests in flight per connection:
// the same here is -conns 50 -clients 800.
//
// Built by bench/replicated.sh from Debian's golang-go + golang-etcd-server-dev (GOPATH
// mode, offline). Prints one line: "ops/s <n> p50_ms <x> p99_ms <y> errors <e>".
package main

import (
	"context"
	"flag"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/clientv3"
)

func main() {
	endpoints := flag.String("endpoints", "127.0.0.1:2379", "comma-separated client URLs (give the leader's)")
	conns := flag.Int("conns", 50, "gRPC connections")
	clients := flag.Int("clients", 50, "concurrent Put loops, spread over the connections")
	duration := flag.Duration("duration", 10*time.Second, "measurement time")
	valSize := flag.Int("val-size", 64, "value bytes")
	keySpace := flag.Int("key-space", 100000, "keys drawn at random from key:000000000000 .. key-space-1")
	flag.Parse()

	eps := strings.Split(*endpoints, ",")
	cs := make([]*clientv3.Client, *conns)
	for i := range cs {
		c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second})
		if err != nil {
			fmt.Fprintln(os.Stderr, "connect:", err)
			os.Exit(1)
		}
		cs[i] = c
	}
	val := strings.Repeat("v", *valSize)
	// Warm every connection up (dial, first request) before the clock starts.
	for _, c := range cs {
		if _, err := c.Put(context.Background(), "warmup", val); err != nil {
			fmt.Fprintln(os.Stderr, "warmup put:", err)
			os.Exit(1)
		}
	}

	var mu sync.Mutex
	var lat []time.Duration
	var errs int
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(*duration)
	for i := 0; i < *clients; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			c := cs[i%len(cs)]
			r := rand.New(rand.NewSource(int64(i)))
			mine := make([]time.Duration, 0, 1<<14)
			e := 0
			for time.Now().Before(deadline) {
				key := fmt.Sprintf("key:%012d", r.Intn(*keySpace))
				t := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := c.Put(ctx, key, val)
				cancel()
				if err != nil {
					e++
					continue
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, mine...)
			errs += e
			mu.Unlock()
		}(i)
	}
	wg.Wait()
	elapsed := time.Since(start)
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000
	}
	fmt.Printf("ops/s %.0f p50_ms %.2f p99_ms %.2f errors %d\n",
		float64(len(lat))/elapsed.Seconds(), pct(0.50), pct(0.99), errs)
	for _, c := range cs {
		c.Close()
	}
}
