// Command clone-loop is the physical limit the vSphere benchmark compares Capstan with: a plain
// govmomi loop that clones N VMs from one template on a vCenter (vcsim), with the same
// concurrency, CPU, memory and guestinfo as Capstan's clones, and powers each on. No Kubernetes,
// no status, no retries: only the vim25 calls a provider cannot avoid. It prints one line with
// the wall time and the SOAP calls it made.
//
//	clone-loop -url https://user:pass@127.0.0.1:PORT/sdk -ca ca.pem -n 100 -concurrency 10
package main

import (
	"context"
	"flag"
	"fmt"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vmware/govmomi/find"
	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/session"
	"github.com/vmware/govmomi/vim25"
	"github.com/vmware/govmomi/vim25/soap"
	"github.com/vmware/govmomi/vim25/types"
)

func main() {
	raw := flag.String("url", "", "vCenter SDK URL with credentials")
	ca := flag.String("ca", "", "PEM file of the CA that signed the server certificate")
	n := flag.Int("n", 100, "VMs to clone")
	concurrency := flag.Int("concurrency", 10, "clones at once")
	template := flag.String("template", "DC0_H0_VM0", "template VM")
	prefix := flag.String("prefix", "loop", "VM name prefix")
	flag.Parse()
	if err := run(*raw, *ca, *n, *concurrency, *template, *prefix); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

func run(raw, ca string, n, concurrency int, template, prefix string) error {
	ctx := context.Background()
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	sc := soap.NewClient(u, false)
	if err := sc.SetRootCAs(ca); err != nil {
		return fmt.Errorf("CA: %w", err)
	}
	var calls atomic.Int64
	vc, err := vim25.NewClient(ctx, counting{sc, &calls})
	if err != nil {
		return err
	}
	if err := session.NewManager(vc).Login(ctx, u.User); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	finder := find.NewFinder(vc, true)
	dc, err := finder.Datacenter(ctx, "DC0")
	if err != nil {
		return err
	}
	finder.SetDatacenter(dc)
	tmpl, err := finder.VirtualMachine(ctx, template)
	if err != nil {
		return err
	}
	folders, err := dc.Folders(ctx)
	if err != nil {
		return err
	}
	pool, err := finder.ResourcePool(ctx, "DC0_C0/Resources")
	if err != nil {
		return err
	}
	poolRef := pool.Reference()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	slots := make(chan struct{}, concurrency)
	for i := 0; i < n; i++ {
		wg.Add(1)
		slots <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-slots }()
			errs <- cloneAndStart(ctx, tmpl, folders.VmFolder, poolRef, fmt.Sprintf("%s-%d", prefix, i))
		}(i)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	elapsed := time.Since(start)
	fmt.Printf("BENCH govmomi_clone_loop vms=%d concurrency=%d wall_s=%.2f soap_calls_per_vm=%.2f\n",
		n, concurrency, elapsed.Seconds(), float64(calls.Load())/float64(n))
	return nil
}

func cloneAndStart(ctx context.Context, tmpl *object.VirtualMachine, folder *object.Folder, pool types.ManagedObjectReference, name string) error {
	spec := types.VirtualMachineCloneSpec{
		Location: types.VirtualMachineRelocateSpec{Pool: &pool},
		Config: &types.VirtualMachineConfigSpec{
			NumCPUs:  2,
			MemoryMB: 2048,
			ExtraConfig: []types.BaseOptionValue{
				&types.OptionValue{Key: "guestinfo.userdata", Value: "I2Nsb3VkLWNvbmZpZwo="},
				&types.OptionValue{Key: "guestinfo.userdata.encoding", Value: "base64"},
			},
		},
	}
	task, err := tmpl.Clone(ctx, folder, name, spec)
	if err != nil {
		return err
	}
	info, err := task.WaitForResult(ctx)
	if err != nil {
		return fmt.Errorf("clone %s: %w", name, err)
	}
	vm := object.NewVirtualMachine(tmpl.Client(), info.Result.(types.ManagedObjectReference))
	power, err := vm.PowerOn(ctx)
	if err != nil {
		return err
	}
	return power.Wait(ctx)
}

// counting counts the SOAP round trips, as the benchmark counts Capstan's by method.
type counting struct {
	soap.RoundTripper
	calls *atomic.Int64
}

func (c counting) RoundTrip(ctx context.Context, req, res soap.HasFault) error {
	c.calls.Add(1)
	return c.RoundTripper.RoundTrip(ctx, req, res)
}
