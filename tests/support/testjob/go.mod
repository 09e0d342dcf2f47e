module stargraph.local/testjob

go 1.26
