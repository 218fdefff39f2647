// Command cabpk-ignition renders one bootstrap document with upstream CABPK's own Ignition
// renderer (the exported clc.Render of sigs.k8s.io/cluster-api), so that Capstan's spec 2.3.0
// output can be compared with the real thing. It reads the renderer's input as JSON on stdin
// (the KubeadmConfig spec's own field names for files, users, NTP, disks and mounts) and
// writes CABPK's Ignition JSON to stdout, or the error to stderr with exit status 1.
package main

import (
	"encoding/json"
	"fmt"
	"os"

	bootstrapv1 "sigs.k8s.io/cluster-api/api/bootstrap/kubeadm/v1beta2"
	"sigs.k8s.io/cluster-api/bootstrap/kubeadm/pkg/cloudinit"
	"sigs.k8s.io/cluster-api/bootstrap/kubeadm/pkg/ignition/clc"
)

type input struct {
	PreKubeadmCommands  []string                  `json:"preKubeadmCommands"`
	PostKubeadmCommands []string                  `json:"postKubeadmCommands"`
	WriteFiles          []bootstrapv1.File        `json:"writeFiles"`
	Users               []bootstrapv1.User        `json:"users"`
	NTP                 *bootstrapv1.NTP          `json:"ntp"`
	DiskSetup           *bootstrapv1.DiskSetup    `json:"diskSetup"`
	Mounts              []bootstrapv1.MountPoints `json:"mounts"`
	// As the controller builds it: "kubeadm init|join --config /etc/kubeadm.yml <verbosity>".
	KubeadmCommand string `json:"kubeadmCommand"`
	// Init: ClusterConfiguration + "\n---\n" + InitConfiguration; joins: JoinConfiguration.
	KubeadmConfig    string `json:"kubeadmConfig"`
	AdditionalConfig string `json:"additionalConfig"`
	Strict           bool   `json:"strict"`
}

func main() {
	var in input
	dec := json.NewDecoder(os.Stdin)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&in); err != nil {
		fmt.Fprintf(os.Stderr, "reading input: %v\n", err)
		os.Exit(1)
	}
	base := &cloudinit.BaseUserData{
		PreKubeadmCommands:  in.PreKubeadmCommands,
		PostKubeadmCommands: in.PostKubeadmCommands,
		WriteFiles:          in.WriteFiles,
		Users:               in.Users,
		NTP:                 in.NTP,
		DiskSetup:           in.DiskSetup,
		Mounts:              in.Mounts,
		KubeadmCommand:      in.KubeadmCommand,
	}
	strict := in.Strict
	out, _, err := clc.Render(base, &bootstrapv1.ContainerLinuxConfig{AdditionalConfig: in.AdditionalConfig, Strict: &strict}, in.KubeadmConfig)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Stdout.Write(out)
}
