package jobs_test

func runWorker() int { return 1 }
