// Command baton-fence-agent is the fence-agent driver as a Baton plugin:
// Baton starts it with fence.Open and configures it with agent=fence_NAME
// and the agent's own parameters.
package main

import (
	"github.com/batonhq/baton/plugins/fence"
	"github.com/batonhq/baton/plugins/fence/drivers/fenceagent"
)

func main() { fence.Serve(fenceagent.New()) }
