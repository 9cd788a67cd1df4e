module example.com/serving/operator

go 1.23

require example.com/serving/api v0.0.0

replace example.com/serving/api => ../api
