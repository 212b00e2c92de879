// jsonpipeline: a channel pipeline of JSON encode/decode stages.
//
// Allocation pattern it stands for: producer/consumer stages on separate
// goroutines, where each stage allocates a value and hands it down a
// buffered channel to the next stage, which frees it (an object allocated on
// one goroutine dies on another). Compare with the synthetic `pipeline`
// workload.
//
// Stages: generate records -> json.Marshal -> json.Unmarshal -> summarise,
// -workers goroutines in each of the two middle stages. Deterministic in what
// it does: -records records with fields computed from their index.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

type record struct {
	Seq    int               `json:"seq"`
	User   string            `json:"user"`
	Items  []int             `json:"items"`
	Labels map[string]string `json:"labels"`
	Note   string            `json:"note"`
}

func main() {
	records := flag.Int("records", 1500, "records to push through the pipeline")
	workers := flag.Int("workers", 2, "goroutines in each of the encode and decode stages")
	buffer := flag.Int("buffer", 16, "capacity of each channel between stages")
	flag.Parse()

	gen := make(chan *record, *buffer)
	enc := make(chan []byte, *buffer)
	dec := make(chan *record, *buffer)

	go func() {
		for i := 0; i < *records; i++ {
			r := &record{Seq: i, User: "user" + strconv.Itoa(i%97), Items: make([]int, i%13),
				Labels: map[string]string{"shard": strconv.Itoa(i % 7)},
				Note:   strings.Repeat("x", 8+i%120)}
			for j := range r.Items {
				r.Items[j] = i * j
			}
			gen <- r
		}
		close(gen)
	}()
	var we, wd sync.WaitGroup
	for w := 0; w < *workers; w++ {
		we.Add(1)
		go func() {
			defer we.Done()
			for r := range gen {
				b, _ := json.Marshal(r)
				enc <- b
			}
		}()
		wd.Add(1)
		go func() {
			defer wd.Done()
			for b := range enc {
				r := new(record)
				json.Unmarshal(b, r)
				dec <- r
			}
		}()
	}
	go func() { we.Wait(); close(enc) }()
	go func() { wd.Wait(); close(dec) }()
	items, users := 0, map[string]int{}
	for r := range dec {
		items += len(r.Items)
		users[r.User]++
	}
	fmt.Println("items", items, "users", len(users))
}
