module example.com/serving/api

go 1.23
