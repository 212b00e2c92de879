// gofmt: gofmt-style parsing and printing of Go source (go/parser, go/printer).
//
// Allocation pattern it stands for: a compiler front end on one goroutine.
// Parsing builds a large tree of small, pointerful AST nodes that all live
// until the file is printed and then die together; printing allocates
// short-lived byte buffers. A phase-structured, mostly single-P heap.
//
// Deterministic in what it does: parses and prints each file named on the
// command line -rounds times (the suite passes Go files kept in the repo).
// With -gc (the default) it collects after each round: a round allocates
// well under the runtime's minimum heap goal, so a run short enough to record
// (each traced event prints a stack trace) would otherwise never collect and
// its trace would hold no free; the forced collection stands in for the ones
// a longer run's allocation volume triggers.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"go/parser"
	"go/printer"
	"go/token"
	"os"
	"runtime"
)

func main() {
	rounds := flag.Int("rounds", 3, "times each file is parsed and printed")
	collect := flag.Bool("gc", true, "run a garbage collection after each round")
	flag.Parse()
	if flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: gofmt [-rounds N] FILE.go...")
		os.Exit(2)
	}
	total := 0
	for r := 0; r < *rounds; r++ {
		for _, name := range flag.Args() {
			src, err := os.ReadFile(name)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, name, src, parser.ParseComments)
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			var buf bytes.Buffer
			if err := (&printer.Config{Mode: printer.UseSpaces | printer.TabIndent, Tabwidth: 8}).Fprint(&buf, fset, f); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			total += buf.Len()
		}
		if *collect {
			runtime.GC()
		}
	}
	fmt.Println("bytes", total)
}
