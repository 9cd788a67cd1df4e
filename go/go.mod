module github.com/polybuild/polybuild-helper

go 1.23
