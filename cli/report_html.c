/* report_html.c -- `neap report --html OUT.html`: one self-contained page
 * (inline CSS, SVG and JavaScript; nothing fetched from the network),
 * written to the file report.c opened before reading the trace.
 *
 *   <header>                   the summary lines (and the moment shown, --at)
 *   <section id="memory-chart">  SVG drawn here, at each 'T' tick: RSS (the
 *                              tick's), live bytes and pinned bytes (bytes
 *                              of the pages holding live bytes: the
 *                              replay's); the peak, the marks (<g id=
 *                              "marks">, one line each) and the moment
 *                              shown (<g id="at-marker">) as vertical lines
 *   <section id="marks">       the marks' table (when the trace has marks)
 *   <section id="flamegraph">  drawn by the page's script from the tree in
 *                              FLAME (live at the moment shown / total
 *                              allocated, switchable; click a frame to zoom)
 *   <section id="top-sites">   three tables, as the text report
 *   <section id="pinning">     the pinning table, and its first sites in
 *                              words (<ul id="pinning-words">)
 *
 * The ids are stable: tests and browsers' checks look for them.  Frame
 * names go into the page escaped (HTML text, or JavaScript strings with '<'
 * escaped so no name can end the script).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "report.h"

/* s as HTML text. */
static void html_text(FILE *f, const char *s) {
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\n': fputs("<br>", f); break;
        default: fputc(*s, f);
        }
    }
}

/* s as a JavaScript string literal, quotes included. */
static void html_js_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c < 0x20 || c == '<' || c == '>' || c == '&') fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
    fputc('"', f);
}

/* The flame tree as nested arrays: [name, live, total, [children]]. */
static void html_flame(FILE *f, const neap_flame_t *n) {
    fputc('[', f);
    html_js_string(f, n->name);
    fprintf(f, ",%.0f,%.0f,[", n->live, n->total);
    for (const neap_flame_t *c = n->child; c; c = c->next) {
        html_flame(f, c);
        if (c->next) fputc(',', f);
    }
    fputs("]]", f);
}

/* The memory chart: an SVG drawn from the ticks. */
static void html_chart(FILE *f, const neap_report_t *r) {
    fputs("<section id=\"memory-chart\"><h2>Memory over time</h2>\n", f);
    if (r->nticks == 0) {
        fputs("<p>The trace has no ticks: no memory figures over time.</p></section>\n", f);
        return;
    }
    const double W = 900, H = 260, L = 70, B = 30, T = 10, R = 20;
    double tmax = (double)r->time_ms, ymax = 1;
    if (tmax < 1) tmax = 1;
    for (size_t i = 0; i < r->nticks; i++) {
        if ((double)r->ticks[i].rss > ymax) ymax = (double)r->ticks[i].rss;
        if (r->ticks[i].replay_live > ymax) ymax = r->ticks[i].replay_live;
        if ((double)r->ticks[i].pinned > ymax) ymax = (double)r->ticks[i].pinned;
    }
    if (r->peak_bytes > ymax) ymax = r->peak_bytes;
    ymax *= 1.05;
    fprintf(f, "<svg viewBox=\"0 0 %.0f %.0f\" width=\"%.0f\" height=\"%.0f\" role=\"img\">\n", W, H, W, H);
    fprintf(f, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" class=\"plot\"/>\n", L, T,
            W - L - R, H - T - B);
    char a[32];
    for (int k = 0; k <= 4; k++) {
        double v = ymax * k / 4, y = H - B - (H - T - B) * k / 4;
        neap_cli_format_size(a, sizeof a, v);
        fprintf(f, "<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                   "<text x=\"%.0f\" y=\"%.1f\" class=\"axis\" text-anchor=\"end\">%s</text>\n",
                L, W - R, y, y, L - 4, y + 4, a);
        double t = tmax * k / 4, x = L + (W - L - R) * k / 4;
        fprintf(f, "<text x=\"%.1f\" y=\"%.0f\" class=\"axis\" text-anchor=\"middle\">%.2f s</text>\n",
                x, H - B + 16, t / 1000);
    }
    const char *cls[3] = {"rss", "pinned", "live"};
    for (int s = 0; s < 3; s++) {
        fprintf(f, "<polyline class=\"%s\" points=\"", cls[s]);
        for (size_t i = 0; i < r->nticks; i++) {
            double v = s == 0 ? (double)r->ticks[i].rss
                       : s == 1 ? (double)r->ticks[i].pinned : r->ticks[i].replay_live;
            fprintf(f, "%.1f,%.1f ", L + (W - L - R) * (double)r->ticks[i].ms / tmax,
                    H - B - (H - T - B) * v / ymax);
        }
        fputs("\"/>\n", f);
    }
    double px = L + (W - L - R) * (double)r->peak_ms / tmax, py = H - B - (H - T - B) * r->peak_bytes / ymax;
    neap_cli_format_size(a, sizeof a, r->peak_bytes);
    fprintf(f, "<g id=\"peak-marker\"><line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.0f\" y2=\"%.0f\" class=\"peak\"/>"
               "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" class=\"peak\"/>"
               "<text x=\"%.1f\" y=\"%.1f\" class=\"axis\">peak %s</text></g>\n",
            px, px, T, H - B, px, py, px + 6, py < T + 14 ? T + 14 : py - 6, a);
    /* the marks, and the moment shown */
    fputs("<g id=\"marks\">", f);
    for (size_t i = 0; i < r->nmarks; i++) {
        const neap_report_mark_t *m = &r->marks[i];
        double mx = L + (W - L - R) * (double)m->ms / tmax;
        neap_cli_format_size(a, sizeof a, m->live_bytes);
        fprintf(f, "<g class=\"mark\"><title>mark %zu at %.3f s: ", i + 1, (double)m->ms / 1000);
        html_text(f, m->label);
        fprintf(f, ", %s live</title><line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.0f\" y2=\"%.0f\" class=\"mark\"/>"
                   "<text x=\"%.1f\" y=\"%.0f\" class=\"mark-label\" text-anchor=\"%s\">", a, mx, mx, T,
                H - B, mx > W - R - 120 ? mx - 3 : mx + 3, T + 12 + (double)(i % 4) * 12,
                mx > W - R - 120 ? "end" : "start"); /* near the right edge: to the left */
        html_text(f, m->label);
        fputs("</text></g>", f);
    }
    fputs("</g>\n", f);
    if (r->at_set) {
        double ax = L + (W - L - R) * (double)r->at_ms / tmax;
        fprintf(f, "<g id=\"at-marker\"><line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.0f\" y2=\"%.0f\" class=\"at\"/>"
                   "<text x=\"%.1f\" y=\"%.0f\" class=\"axis\" text-anchor=\"%s\">shown: ",
                ax, ax, T, H - B, ax > W - R - 160 ? ax - 3 : ax + 3, H - B - 6,
                ax > W - R - 160 ? "end" : "start");
        html_text(f, r->at_name);
        fputs("</text></g>\n", f);
    }
    fputs("</svg>\n<p class=\"legend\"><span class=\"k rss\"></span>RSS "
          "<span class=\"k pinned\"></span>pinned: bytes of the 4&nbsp;KiB pages holding a live byte "
          "<span class=\"k live\"></span>live bytes (both replayed from the trace, at each tick); "
          "the peak is the replayed one (after the tick it follows); "
          "<span class=\"k mark\"></span>marks</p></section>\n", f);
}

/* The marks' table. */
static void html_marks(FILE *f, const neap_report_t *r) {
    if (r->nmarks == 0) return;
    fputs("<section id=\"marks-table\"><h2>Marks</h2>\n<p>Moments the program named "
          "(neap_trace_mark) or <code>neap mark PID LABEL</code> named while it ran.</p>\n"
          "<table><tr><th>#</th><th>time</th><th>live</th><th>pinned</th><th>label</th></tr>\n", f);
    for (size_t i = 0; i < r->nmarks; i++) {
        const neap_report_mark_t *m = &r->marks[i];
        char a[32], b[32];
        neap_report_size(a, sizeof a, m->live_bytes);
        neap_report_size(b, sizeof b, (double)m->pinned);
        fprintf(f, "<tr><td>%zu</td><td class=\"n\">%.3f s</td><td class=\"n\">%s</td><td class=\"n\">%s</td>"
                   "<td class=\"site\">",
                i + 1, (double)m->ms / 1000, a, b);
        html_text(f, m->label);
        fputs("</td></tr>\n", f);
    }
    fputs("</table></section>\n", f);
}

static void html_top(FILE *f, const neap_report_t *r, const char *title, long key, long count_key,
                     int top) {
    size_t *order = neap_report_order(r, key);
    fputs("<h3>", f);
    html_text(f, title); /* a mark's label may be in it */
    fputs("</h3>\n<table><tr><th>#</th><th>bytes</th><th>blocks</th><th>site</th></tr>\n", f);
    size_t shown = 0;
    for (size_t i = 0; i < r->nsites && shown < (size_t)top; i++) {
        const neap_report_site_t *s = &r->sites[order[i]];
        double bytes = *(const double *)((const char *)&s->fig + key);
        double n = *(const double *)((const char *)&s->fig + count_key);
        if (bytes <= 0 && n <= 0) break;
        char a[32];
        neap_report_size(a, sizeof a, bytes);
        fprintf(f, "<tr><td>%zu</td><td class=\"n\">%s</td><td class=\"n\">%.*f</td><td class=\"site\">",
                ++shown, a, r->sampled ? 1 : 0, n);
        html_text(f, s->trace ? s->trace : s->label);
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n", f);
    free(order);
}

static void html_pinning(FILE *f, const neap_report_t *r, int top) {
    size_t *order = neap_report_order(r, -1);
    fputs("<section id=\"pinning\"><h2>Pinning at ", f);
    html_text(f, r->at_name);
    fputs(": why memory does not go down</h2>\n"
          "<p>A 4&nbsp;KiB page with any live block cannot be given back to the OS, nor a 4&nbsp;MiB "
          "arena with any. Pinned = pages &times; 4&nbsp;KiB; a page shared by several sites is "
          "split by their live bytes. A high ratio means a few small blocks hold whole pages.</p>\n"
          "<table><tr><th>#</th><th>live</th><th>pinned</th><th>ratio</th><th>pages</th>"
          "<th>shared</th><th>arenas</th><th>site</th></tr>\n", f);
    size_t shown = 0;
    for (size_t i = 0; i < r->nsites && shown < (size_t)top; i++) {
        const neap_report_site_t *s = &r->sites[order[i]];
        if (s->pin.pages <= 0) break;
        char a[32], b[32];
        neap_report_size(a, sizeof a, s->pin.live_bytes);
        neap_report_size(b, sizeof b, s->pin.pages * 4096);
        fprintf(f, "<tr><td>%zu</td><td class=\"n\">%s</td><td class=\"n\">%s</td><td class=\"n\">%.1fx</td>"
                   "<td class=\"n\">%.2f</td><td class=\"n\">%llu</td><td class=\"n\">%llu</td><td class=\"site\">",
                ++shown, a, b, s->pin.live_bytes > 0 ? s->pin.pages * 4096 / s->pin.live_bytes : 0.0,
                s->pin.pages, (unsigned long long)s->pin.pages_shared,
                (unsigned long long)s->pin.arenas);
        html_text(f, s->trace ? s->trace : s->label);
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n<ul id=\"pinning-words\">\n", f);
    for (size_t i = 0; i < r->nsites && i < 3 && i < (size_t)top; i++) {
        const neap_report_site_t *s = &r->sites[order[i]];
        if (s->pin.pages <= 0) break;
        char line[512];
        neap_report_pin_words(line, sizeof line, s);
        fputs("<li>", f);
        html_text(f, line);
        fputs("</li>\n", f);
    }
    fputs("</ul></section>\n", f);
    free(order);
}

static const char html_style[] =
    "body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}\n"
    "h1{font-size:1.3em}h2{font-size:1.15em;margin-top:1.6em}h3{font-size:1em}\n"
    "pre.summary{background:#f6f6f6;padding:.6em;overflow:auto}\n"
    "table{border-collapse:collapse}td,th{padding:2px 8px;border-bottom:1px solid #ddd;text-align:left}\n"
    "td.n{text-align:right;font-variant-numeric:tabular-nums}td.site{font-family:monospace}\n"
    ".plot{fill:#fcfcfc;stroke:#ccc}.grid{stroke:#eee}.axis{font-size:11px;fill:#555}\n"
    "polyline{fill:none;stroke-width:1.5}polyline.rss,.k.rss{stroke:#c0392b;background:#c0392b}\n"
    "polyline.live,.k.live{stroke:#2471a3;background:#2471a3}\n"
    "polyline.pinned,.k.pinned{stroke:#d68910;background:#d68910}\n"
    "line.mark,.k.mark{stroke:#117a65;background:#117a65;stroke-dasharray:2 2}\n"
    ".mark-label{font-size:10px;fill:#117a65}line.at{stroke:#000;stroke-width:1.5}\n"
    ".peak{stroke:#7d3c98;fill:#7d3c98;stroke-dasharray:4 3}\n"
    ".k{display:inline-block;width:12px;height:3px;margin:0 4px 3px 10px}\n"
    "#flame-svg{width:100%;display:block}#flame-svg rect{stroke:#fff;stroke-width:.5;cursor:pointer}\n"
    "#flame-svg text{font:11px monospace;pointer-events:none}\n"
    "button.on{font-weight:bold}\n";

/* The flame graph's script: lays FLAME out as an icicle (the root on top,
 * callees below), width proportional to the chosen measure. */
static const char html_script[] =
    "(function(){\n"
    "var svg=document.getElementById('flame-svg'),info=document.getElementById('flame-info');\n"
    "var NS='http://www.w3.org/2000/svg',ROW=18,measure=1,zoom=FLAME;\n"
    "function fmt(b){var u=['B','KiB','MiB','GiB'],i=0;while(b>=1024&&i<3){b/=1024;i++;}\n"
    "  return (i?b.toFixed(1):b.toFixed(0))+' '+u[i];}\n"
    "function color(name){var h=0;for(var i=0;i<name.length;i++)h=(h*31+name.charCodeAt(i))>>>0;\n"
    "  return 'hsl('+(10+h%40)+','+(60+h%30)+'%,'+(55+h%15)+'%)';}\n"
    "function depth(n){var d=0;n[3].forEach(function(c){d=Math.max(d,depth(c));});return d+1;}\n"
    "function draw(){\n"
    "  while(svg.firstChild)svg.removeChild(svg.firstChild);\n"
    "  var W=svg.clientWidth||1000,total=zoom[measure];\n"
    "  svg.setAttribute('height',depth(zoom)*ROW+2);\n"
    "  if(!(total>0)){info.textContent='nothing to show for this measure';return;}\n"
    "  info.textContent=(measure==1?'live at '+LIVE_AT+': ':'total allocated: ')+fmt(total)+' under '+zoom[0]+\n"
    "    (zoom!==FLAME?' (click the top frame to zoom out)':' (click a frame to zoom in)');\n"
    "  (function lay(n,x,y){var w=n[measure]/total*W;if(w<0.5)return;\n"
    "    var g=document.createElementNS(NS,'g'),r=document.createElementNS(NS,'rect');\n"
    "    r.setAttribute('x',x);r.setAttribute('y',y);r.setAttribute('width',w);r.setAttribute('height',ROW-1);\n"
    "    r.setAttribute('fill',color(n[0]));\n"
    "    var t=document.createElementNS(NS,'title');\n"
    "    t.textContent=n[0]+': '+fmt(n[measure])+' ('+(100*n[measure]/FLAME[measure]).toFixed(1)+'%)';\n"
    "    r.appendChild(t);g.appendChild(r);\n"
    "    if(w>40){var s=document.createElementNS(NS,'text');s.setAttribute('x',x+3);s.setAttribute('y',y+13);\n"
    "      var c=Math.floor((w-6)/7);s.textContent=n[0].length>c?n[0].slice(0,Math.max(c-1,0))+'\\u2026':n[0];\n"
    "      g.appendChild(s);}\n"
    "    r.addEventListener('click',function(){zoom=(n===zoom&&zoom!==FLAME)?FLAME:n;draw();});\n"
    "    svg.appendChild(g);\n"
    "    var cx=x;n[3].slice().sort(function(a,b){return b[measure]-a[measure];}).forEach(function(c){\n"
    "      lay(c,cx,y+ROW);cx+=c[measure]/total*W;});\n"
    "  })(zoom,0,0);\n"
    "}\n"
    "var bl=document.getElementById('flame-live'),bt=document.getElementById('flame-total');\n"
    "bl.onclick=function(){measure=1;zoom=FLAME;bl.className='on';bt.className='';draw();};\n"
    "bt.onclick=function(){measure=2;zoom=FLAME;bt.className='on';bl.className='';draw();};\n"
    "if(location.hash==='#total'||(!(FLAME[1]>0)&&FLAME[2]>0))bt.onclick();else draw();\n"
    "window.addEventListener('resize',draw);\n"
    "})();\n";

int neap_report_html(const neap_report_t *r, FILE *f, int top) {
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>neap report: ", f);
    html_text(f, r->cmdline[0] ? r->cmdline : r->path);
    fprintf(f, "</title>\n<style>\n%s</style></head><body>\n<header id=\"summary\"><h1>neap report: ", html_style);
    html_text(f, r->path);
    fputs("</h1>\n<pre class=\"summary\">", f);
    char a[32];
    fputs("command    ", f);
    html_text(f, r->cmdline);
    fprintf(f, "\npid        %u\nmode       %s\n", r->hdr.pid,
            r->sampled ? "sampled: figures are estimates" : "every allocation");
    neap_report_size(a, sizeof a, r->total_bytes);
    fprintf(f, "allocated  %s in %.0f blocks\n", a, r->total_count);
    neap_report_size(a, sizeof a, r->peak_bytes);
    fprintf(f, "peak       %s live after %.3f s\n", a, (double)r->peak_ms / 1000);
    neap_report_size(a, sizeof a, r->end_live_bytes);
    fprintf(f, "%-10s %s live in %.0f blocks\n", r->ended ? "at exit" : "at the end", a, r->end_live_count);
    if (r->at_set) {
        neap_report_size(a, sizeof a, r->live_bytes);
        fputs("shown      ", f);
        html_text(f, r->at_desc);
        fprintf(f, ": %s live in %.0f blocks\n", a, r->live_count);
    }
    if (r->status != NEAP_TRACE_CLEAN) {
        fputs("warning    ", f);
        html_text(f, r->message[0] ? r->message : "no end record: the program was killed or is still running");
        fputc('\n', f);
    }
    fputs("</pre></header>\n", f);

    html_chart(f, r);
    html_marks(f, r);

    fputs("<section id=\"flamegraph\"><h2>Flame graph</h2>\n"
          "<p><button id=\"flame-live\" class=\"on\">live at ", f);
    html_text(f, r->at_name);
    fputs("</button> "
          "<button id=\"flame-total\">total allocated</button> <span id=\"flame-info\"></span></p>\n"
          "<svg id=\"flame-svg\" xmlns=\"http://www.w3.org/2000/svg\"></svg></section>\n", f);

    fputs("<section id=\"top-sites\"><h2>Top allocation sites</h2>\n", f);
    char title[160];
    snprintf(title, sizeof title, "Live at %s", r->at_name);
    html_top(f, r, r->at_set ? title : r->ended ? "Live at exit (leaks)" : "Live at the end of the trace",
             (long)offsetof(neap_report_fig_t, live_bytes), (long)offsetof(neap_report_fig_t, live_count), top);
    html_top(f, r, "Live at the peak", (long)offsetof(neap_report_fig_t, peak_bytes),
             (long)offsetof(neap_report_fig_t, peak_count), top);
    html_top(f, r, "Total allocated", (long)offsetof(neap_report_fig_t, total_bytes),
             (long)offsetof(neap_report_fig_t, total_count), top);
    fputs("</section>\n", f);
    html_pinning(f, r, top);

    fputs("<script>\nvar LIVE_AT=", f);
    html_js_string(f, r->at_name);
    fputs(";\nvar FLAME=", f);
    html_flame(f, r->flame);
    fprintf(f, ";\n%s</script>\n</body></html>\n", html_script);
    return ferror(f) ? -1 : 0;
}
