// helm_render renders a Helm chart the way `helm template` does, with Helm's own
// template engine (Go's text/template and sprig) and Helm's extra functions
// (include, tpl, toYaml, fromYaml, required), for tests on machines without helm.
//
//	helm_render CHART_DIR RELEASE NAMESPACE [VALUES_FILE ...]
//
// Values files are merged over the chart's values.yaml, later ones winning, as
// `helm template -f` does. The manifests go to stdout, each after
// "# Source: <chart>/templates/<file>"; NOTES.txt is rendered last, after a line
// "# NOTES.txt". A render error exits 1 with the message.
package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig"
	"gopkg.in/yaml.v3"
)

func readYAML(path string) map[string]interface{} {
	data, err := os.ReadFile(path)
	if err != nil {
		fail(err)
	}
	out := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &out); err != nil {
		fail(fmt.Errorf("%s: %w", path, err))
	}
	return out
}

// merge copies src over dst, recursing into maps (Helm's coalescing of values).
func merge(dst, src map[string]interface{}) map[string]interface{} {
	for key, value := range src {
		if sub, ok := value.(map[string]interface{}); ok {
			if existing, ok := dst[key].(map[string]interface{}); ok {
				dst[key] = merge(existing, sub)
				continue
			}
		}
		dst[key] = value
	}
	return dst
}

func toYaml(v interface{}) string {
	var buf bytes.Buffer
	encoder := yaml.NewEncoder(&buf)
	encoder.SetIndent(2)
	if err := encoder.Encode(v); err != nil {
		return ""
	}
	encoder.Close()
	return strings.TrimSuffix(buf.String(), "\n")
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "helm_render:", err)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 4 {
		fail(errors.New("usage: helm_render CHART_DIR RELEASE NAMESPACE [VALUES_FILE ...]"))
	}
	chartDir, release, namespace := os.Args[1], os.Args[2], os.Args[3]
	meta := readYAML(filepath.Join(chartDir, "Chart.yaml"))
	values := readYAML(filepath.Join(chartDir, "values.yaml"))
	for _, file := range os.Args[4:] {
		values = merge(values, readYAML(file))
	}
	chartName := fmt.Sprint(meta["name"])
	chart := map[string]interface{}{
		"Name": meta["name"], "Version": meta["version"], "AppVersion": meta["appVersion"],
		"Description": meta["description"],
	}

	root := template.New(chartName)
	funcs := sprig.TxtFuncMap()
	funcs["toYaml"] = toYaml
	funcs["fromYaml"] = func(s string) map[string]interface{} {
		out := map[string]interface{}{}
		_ = yaml.Unmarshal([]byte(s), &out)
		return out
	}
	funcs["required"] = func(message string, value interface{}) (interface{}, error) {
		if value == nil || value == "" {
			return nil, errors.New(message)
		}
		return value, nil
	}
	// As in `helm template`: no cluster to look objects up in.
	funcs["lookup"] = func(apiVersion, kind, namespace, name string) map[string]interface{} {
		return map[string]interface{}{}
	}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		var buf bytes.Buffer
		err := root.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		t, err := root.Clone()
		if err != nil {
			return "", err
		}
		t, err = t.New("tpl").Parse(text)
		if err != nil {
			return "", err
		}
		var buf bytes.Buffer
		err = t.Execute(&buf, data)
		return buf.String(), err
	}
	root.Funcs(funcs).Option("missingkey=zero")

	templatesDir := filepath.Join(chartDir, "templates")
	entries, err := os.ReadDir(templatesDir)
	if err != nil {
		fail(err)
	}
	var names []string
	for _, entry := range entries {
		if entry.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(templatesDir, entry.Name()))
		if err != nil {
			fail(err)
		}
		name := chartName + "/templates/" + entry.Name()
		if _, err := root.New(name).Parse(string(data)); err != nil {
			fail(err)
		}
		names = append(names, entry.Name())
	}
	sort.Strings(names)

	render := func(file string) string {
		name := chartName + "/templates/" + file
		data := map[string]interface{}{
			"Values":  values,
			"Release": map[string]interface{}{"Name": release, "Namespace": namespace, "Service": "Helm", "IsInstall": true, "IsUpgrade": false, "Revision": 1},
			"Chart":   chart,
			"Capabilities": map[string]interface{}{
				"KubeVersion": map[string]interface{}{"Version": "v1.29.0", "Major": "1", "Minor": "29"},
			},
			"Template": map[string]interface{}{"Name": name, "BasePath": chartName + "/templates"},
		}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, name, data); err != nil {
			fail(err)
		}
		return strings.ReplaceAll(buf.String(), "<no value>", "")
	}

	var out strings.Builder
	for _, file := range names {
		if strings.HasPrefix(file, "_") || file == "NOTES.txt" {
			continue
		}
		body := render(file)
		if strings.TrimSpace(body) == "" {
			continue
		}
		fmt.Fprintf(&out, "---\n# Source: %s/templates/%s\n%s\n", chartName, file, strings.TrimSpace(body))
	}
	for _, file := range names {
		if file == "NOTES.txt" {
			fmt.Fprintf(&out, "# NOTES.txt\n%s\n", render(file))
		}
	}
	fmt.Print(out.String())
}
