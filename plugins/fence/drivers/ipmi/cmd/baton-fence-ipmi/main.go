// Command baton-fence-ipmi is the IPMI driver as a Baton plugin.
package main

import (
	"github.com/batonhq/baton/plugins/fence"
	"github.com/batonhq/baton/plugins/fence/drivers/ipmi"
)

func main() { fence.Serve(ipmi.New()) }
