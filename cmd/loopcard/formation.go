package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/loopcard/loopcard/ledger/pgcluster/formation"
)

func dbCommand() *cli.Command {
	dirFlag := &cli.StringFlag{Name: "dir", Required: true, Usage: "the formation's directory"}
	jsonFlag := &cli.BoolFlag{Name: "json", Usage: "print JSON"}
	return &cli.Command{
		Name:  "db",
		Usage: "the database: a pg_auto_failover formation (monitor, primary, synchronous secondary)",
		Subcommands: []*cli.Command{{
			Name:  "formation",
			Usage: "a private three-node formation on this machine, for trying failover (docs/run-an-event.md)",
			Subcommands: []*cli.Command{
				{
					Name:  "up",
					Usage: "create (first time) and start the formation; print the URL for --database-url",
					Flags: []cli.Flag{dirFlag,
						&cli.IntFlag{Name: "port", Usage: "the monitor's port; the nodes take the next two (needed the first time)"},
						jsonFlag},
					Action: func(c *cli.Context) error {
						f, err := formation.Up(c.Context, formation.Options{Dir: c.String("dir"), Port: c.Int("port"), Logger: logger(c)})
						if err != nil {
							return err
						}
						return printFormation(c, f)
					},
				},
				{
					Name:  "status",
					Usage: "print every node's state as the monitor sees it, and the URL",
					Flags: []cli.Flag{dirFlag, jsonFlag},
					Action: func(c *cli.Context) error {
						f, err := formation.Open(c.String("dir"), logger(c))
						if err != nil {
							return err
						}
						return printFormation(c, f)
					},
				},
				{
					Name:      "kill",
					Usage:     "simulate the loss of a node's machine (SIGKILL to its keeper and PostgreSQL)",
					ArgsUsage: "NODE|primary",
					Flags:     []cli.Flag{dirFlag},
					Action: func(c *cli.Context) error {
						if c.NArg() != 1 {
							return fmt.Errorf("usage: loopcard db formation kill --dir D NODE|primary")
						}
						f, err := formation.Open(c.String("dir"), logger(c))
						if err != nil {
							return err
						}
						node := c.Args().First()
						if node == "primary" {
							if node, err = f.Primary(c.Context); err != nil {
								return err
							}
							if node == "" {
								return fmt.Errorf("the formation has no primary now: see `loopcard db formation status --dir %s`", f.Dir())
							}
						}
						if err := f.Kill(node); err != nil {
							return err
						}
						fmt.Fprintf(c.App.Writer, "killed %s; bring it back as a secondary with `loopcard db formation up --dir %s`\n", node, f.Dir())
						return nil
					},
				},
				{
					Name:  "down",
					Usage: "stop every node (the data stays; up starts it again)",
					Flags: []cli.Flag{dirFlag},
					Action: func(c *cli.Context) error {
						f, err := formation.Open(c.String("dir"), logger(c))
						if err != nil {
							return err
						}
						if err := f.Down(); err != nil {
							return err
						}
						fmt.Fprintf(c.App.Writer, "formation under %s stopped\n", f.Dir())
						return nil
					},
				},
			},
		}},
	}
}

func printFormation(c *cli.Context, f *formation.Formation) error {
	nodes, err := f.State(c.Context)
	if err != nil {
		return fmt.Errorf("%w: is the formation running? `loopcard db formation up --dir %s`", err, f.Dir())
	}
	if c.Bool("json") {
		return printJSON(c, map[string]any{"url": f.URL(), "monitor": f.MonitorURL(), "nodes": nodes})
	}
	for _, n := range nodes {
		health := "healthy"
		if !n.Healthy {
			health = "unhealthy"
		}
		fmt.Fprintf(c.App.Writer, "%-8s 127.0.0.1:%d  %-12s (assigned %s, %s)\n", n.Name, n.Port, n.Reported, n.Assigned, health)
	}
	fmt.Fprintf(c.App.Writer, "url: %s\n", f.URL())
	return nil
}
