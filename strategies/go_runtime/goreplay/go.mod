module alloclab/goreplay

go 1.19
