// Times Porcupine on kv EDN histories, read as `waymark-jepsen check --model kv` reads
// them (benches/checker.sh builds it against a Porcupine checkout): :ok completes, :fail
// drops the operation, :info (or no completion) leaves it open forever with an unknown
// output. Prints "<file>: <verdict> in <seconds> s" for the check alone.
package main

import (
	"bufio"
	"flag"
	"fmt"
	"hash/fnv"
	"math"
	"os"
	"regexp"
	"sort"
	"strconv"
	"time"

	"github.com/anishathalye/porcupine"
)

type kvInput struct {
	op    int // 0 get, 1 put, 2 append
	key   string
	value string
}

type kvOutput struct {
	value   string
	unknown bool
}

var line = regexp.MustCompile(`^\{:process (\d+), :type :(\w+), :f :(\w+), :key "([^"]*)", :value (nil|"(.*)")\}$`)

func parse(path string) []porcupine.Operation {
	f, err := os.Open(path)
	if err != nil {
		panic(err)
	}
	defer f.Close()
	var ops []porcupine.Operation
	dropped := map[int]bool{}
	open := map[int]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	n := 0
	for sc.Scan() {
		n++
		m := line.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		proc, _ := strconv.Atoi(m[1])
		switch m[2] {
		case "invoke":
			op := map[string]int{"get": 0, "put": 1, "append": 2}[m[3]]
			open[proc] = len(ops)
			ops = append(ops, porcupine.Operation{ClientId: proc, Input: kvInput{op, m[4], m[6]},
				Call: int64(n), Output: kvOutput{unknown: true}, Return: math.MaxInt64})
		case "ok":
			i := open[proc]
			delete(open, proc)
			ops[i].Output = kvOutput{value: m[6]}
			ops[i].Return = int64(n)
		case "fail":
			dropped[open[proc]] = true
			delete(open, proc)
		case "info":
			delete(open, proc)
		}
	}
	var kept []porcupine.Operation
	for i, op := range ops {
		if !dropped[i] {
			kept = append(kept, op)
		}
	}
	return kept
}

var model = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		m := map[string][]porcupine.Operation{}
		for _, v := range history {
			k := v.Input.(kvInput).key
			m[k] = append(m[k], v)
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var ret [][]porcupine.Operation
		for _, k := range keys {
			ret = append(ret, m[k])
		}
		return ret
	},
	Init: func() interface{} { return "" },
	Step: func(state, input, output interface{}) (bool, interface{}) {
		in := input.(kvInput)
		out := output.(kvOutput)
		st := state.(string)
		switch in.op {
		case 0:
			return out.unknown || out.value == st, state
		case 1:
			return true, in.value
		default:
			return true, st + in.value
		}
	},
	Equal: func(a, b interface{}) bool { return a.(string) == b.(string) },
	Hash: func(state interface{}) uint64 {
		h := fnv.New64a()
		h.Write([]byte(state.(string)))
		return h.Sum64()
	},
}

func main() {
	limit := flag.Int("timeout", 60, "seconds per history")
	flag.Parse()
	timeout := time.Duration(*limit) * time.Second
	for _, path := range flag.Args() {
		ops := parse(path)
		start := time.Now()
		res := porcupine.CheckOperationsTimeout(model, ops, timeout)
		el := time.Since(start)
		v := map[porcupine.CheckResult]string{porcupine.Ok: "linearizable", porcupine.Illegal: "not linearizable", porcupine.Unknown: "unknown"}[res]
		fmt.Printf("%s: %s in %.3f s\n", path, v, el.Seconds())
	}
}
