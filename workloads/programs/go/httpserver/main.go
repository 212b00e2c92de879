// httpserver: a net/http server with a goroutine per connection, driven by a
// bounded client on 127.0.0.1 (loopback only, an ephemeral port).
//
// Allocation pattern it stands for: a request/response service. Each request
// allocates short-lived buffers, headers (maps of string slices), a parsed
// URL and a JSON response on the goroutine that serves it, and frees them
// soon after; the server's own state (mux, listener) is long-lived. Compare
// with the synthetic `web` workload.
//
// Deterministic in what it does: -requests requests from -clients client
// goroutines, each asking for /item?id=N with N in a fixed order.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
)

type item struct {
	ID    int               `json:"id"`
	Name  string            `json:"name"`
	Tags  []string          `json:"tags"`
	Attrs map[string]string `json:"attrs"`
}

func handler(w http.ResponseWriter, r *http.Request) {
	id, err := strconv.Atoi(r.URL.Query().Get("id"))
	if err != nil {
		http.Error(w, "bad id", http.StatusBadRequest)
		return
	}
	it := item{ID: id, Name: fmt.Sprintf("item-%d", id), Tags: make([]string, 0, id%5),
		Attrs: map[string]string{}}
	for i := 0; i < id%5; i++ {
		it.Tags = append(it.Tags, "tag"+strconv.Itoa(i))
		it.Attrs["k"+strconv.Itoa(i)] = fmt.Sprint(id * i)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(&it)
}

func main() {
	requests := flag.Int("requests", 400, "requests to make")
	clients := flag.Int("clients", 4, "concurrent client goroutines (the bound on requests in flight)")
	flag.Parse()

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: http.HandlerFunc(handler)}
	go srv.Serve(ln)
	url := "http://" + ln.Addr().String() + "/item?id="

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *clients}}
	var wg sync.WaitGroup
	next := make(chan int)
	total := 0
	var mu sync.Mutex
	for c := 0; c < *clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for id := range next {
				resp, err := client.Get(url + strconv.Itoa(id))
				if err != nil {
					fmt.Fprintln(os.Stderr, "get:", err)
					os.Exit(1)
				}
				var it item
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				json.Unmarshal(body, &it)
				mu.Lock()
				total += len(it.Tags)
				mu.Unlock()
			}
		}()
	}
	for i := 0; i < *requests; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	srv.Close()
	fmt.Println("tags", total)
}
