// Go's lib/pq driver (Debian golang-github-lib-pq-dev) against `citybooks serve`:
// SCRAM login, a query with a bound parameter, numeric amounts as exact text.
// Usage: go run client.go PORT USER PASSWORD. Prints one JSON object.
package main

import (
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"os"

	_ "github.com/lib/pq"
)

func main() {
	port, user, password := os.Args[1], os.Args[2], os.Args[3]
	dsn := fmt.Sprintf("postgres://%s:%s@127.0.0.1:%s/citybooks?sslmode=disable",
		url.PathEscape(user), url.PathEscape(password), port)
	db, err := sql.Open("postgres", dsn)
	if err != nil {
		fail(err)
	}
	defer db.Close()
	out := map[string]any{}
	var version, who string
	if err := db.QueryRow("select version(), current_user").Scan(&version, &who); err != nil {
		fail(err)
	}
	out["version"], out["who"] = version, who
	var n int64
	var total string
	err = db.QueryRow(
		"select count(*), sum(t.amount) from report.transaction t "+
			"join report.finance f on t.finance_id = f.finance_id where f.revenue_or_spending = $1",
		"Revenue").Scan(&n, &total)
	if err != nil {
		fail(err)
	}
	out["n"], out["total"] = n, total
	enc, _ := json.Marshal(out)
	fmt.Println(string(enc))
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
