// Command baton-fence-process is the process driver as a Baton plugin.
package main

import (
	"github.com/batonhq/baton/plugins/fence"
	"github.com/batonhq/baton/plugins/fence/drivers/process"
)

func main() { fence.Serve(process.New()) }
