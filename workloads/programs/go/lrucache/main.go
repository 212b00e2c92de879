// lrucache: a mutex-guarded LRU cache of string keys to byte-slice values,
// shared by worker goroutines doing a fixed mix of gets and puts.
//
// Allocation pattern it stands for: a long-lived in-memory cache (sessions,
// parsed templates, query results). Entries live for many operations and are
// evicted by whichever worker inserts past the capacity, so an object
// allocated on one goroutine is often dropped by another; keys are small
// strings, values span tens of bytes to a few KiB.
//
// Deterministic in what it does: each worker runs -ops operations from its
// own seeded generator (math/rand with a fixed seed per worker).
package main

import (
	"container/list"
	"flag"
	"fmt"
	"math/rand"
	"strconv"
	"sync"
)

type entry struct {
	key string
	val []byte
}

type lru struct {
	mu    sync.Mutex
	cap   int
	ll    *list.List
	items map[string]*list.Element
}

func (c *lru) get(k string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		c.ll.MoveToFront(e)
		return e.Value.(*entry).val, true
	}
	return nil, false
}

func (c *lru) put(k string, v []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[k]; ok {
		e.Value.(*entry).val = v
		c.ll.MoveToFront(e)
		return
	}
	c.items[k] = c.ll.PushFront(&entry{k, v})
	if c.ll.Len() > c.cap {
		old := c.ll.Back()
		c.ll.Remove(old)
		delete(c.items, old.Value.(*entry).key)
	}
}

func main() {
	workers := flag.Int("workers", 4, "worker goroutines")
	ops := flag.Int("ops", 6000, "operations per worker")
	capacity := flag.Int("capacity", 2000, "entries the cache keeps")
	keys := flag.Int("keys", 8000, "distinct keys")
	flag.Parse()

	c := &lru{cap: *capacity, ll: list.New(), items: map[string]*list.Element{}}
	var wg sync.WaitGroup
	hits := make([]int, *workers)
	for w := 0; w < *workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w + 1)))
			for i := 0; i < *ops; i++ {
				k := "key:" + strconv.Itoa(rng.Intn(*keys))
				if _, ok := c.get(k); ok {
					hits[w]++
				} else {
					c.put(k, make([]byte, 32<<uint(rng.Intn(7))))
				}
			}
		}(w)
	}
	wg.Wait()
	total := 0
	for _, h := range hits {
		total += h
	}
	fmt.Println("hits", total)
}
