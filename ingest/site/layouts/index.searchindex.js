{{- $posts := slice -}}
{{- range .Site.RegularPages.ByDate.Reverse -}}
{{- $posts = $posts | append (dict "title" .Title "url" (printf "%sindex.html" (strings.TrimPrefix "/" .RelPermalink)) "date" (.Date.UTC.Format "2006-01-02") "text" .Plain) -}}
{{- end -}}
window.SEARCH_INDEX = {{ $posts | jsonify }};
