// Plain-jsonnet building blocks for the dashboards (grafonnet cannot be fetched here): panels,
// targets, variables, links, annotations, and a layout that places panels left to right on a
// 24-column grid (a row starts a new line) and numbers them, so ids stay unique and panels never
// overlap. Modern JSON only: timeseries, stat, table and heatmap panels (schemaVersion 39).
local DS = { type: 'prometheus', uid: '${datasource}' };
{
  DS: DS,

  target(expr, legend='', instant=false, format='time_series'):: {
    datasource: DS,
    editorMode: 'code',
    expr: expr,
    format: format,
    instant: instant,
    legendFormat: legend,
    range: !instant,
  },
  tableTarget(expr):: self.target(expr, instant=true, format='table'),

  thresholds(steps):: {
    mode: 'absolute',
    steps: [{ color: s[1], value: s[0] } for s in steps],
  },
  GREEN:: [[null, 'green']],
  UPDOWN:: [{ options: { '0': { color: 'red', text: 'down' }, '1': { color: 'green', text: 'up' } }, type: 'value' }],

  local withRefs(targets) = [targets[i] { refId: std.char(65 + i) } for i in std.range(0, std.length(targets) - 1)],

  panel(kind, title, description, targets, w, h, field={}, options={}, overrides=[], transformations=null, repeat=null, repeatDirection='h'):: {
    datasource: DS,
    description: description,
    fieldConfig: { defaults: field, overrides: overrides },
    gridPos: { w: w, h: h },
    options: options,
    targets: withRefs(targets),
    title: title,
    type: kind,
    [if transformations != null then 'transformations']: transformations,
    [if repeat != null then 'repeat']: repeat,
    [if repeat != null then 'repeatDirection']: repeatDirection,
    [if repeat != null && repeatDirection == 'h' then 'maxPerRow']: 2,
  },

  timeseries(title, description, targets, unit='short', w=12, h=8, stack=false, min=0, max=null,
             overrides=[], threshold=null, links=null, repeat=null)::
    local custom = {
      drawStyle: 'line',
      fillOpacity: if stack then 25 else 8,
      lineWidth: 1,
      showPoints: 'never',
      spanNulls: false,
      stacking: { group: 'A', mode: if stack then 'normal' else 'none' },
    } + (if threshold != null then { thresholdsStyle: { mode: 'dashed' } } else {});
    self.panel('timeseries', title, description, targets, w, h,
               { color: { mode: 'palette-classic' }, custom: custom, unit: unit }
               + (if min != null then { min: min } else {})
               + (if max != null then { max: max } else {})
               + (if threshold != null then { thresholds: $.thresholds([[null, 'transparent'], [threshold, 'red']]) } else {})
               + (if links != null then { links: links } else {}),
               {
                 legend: { calcs: ['mean', 'max', 'lastNotNull'], displayMode: 'table', placement: 'bottom', showLegend: true },
                 tooltip: { mode: 'multi', sort: 'desc' },
               },
               overrides, repeat=repeat),

  stat(title, description, targets, unit='short', w=4, h=4, steps=self.GREEN, textMode='auto', mappings=null)::
    self.panel('stat', title, description, targets, w, h,
               { color: { mode: 'thresholds' }, thresholds: $.thresholds(steps), unit: unit }
               + (if mappings != null then { mappings: mappings } else {}),
               {
                 colorMode: 'value',
                 graphMode: 'none',
                 justifyMode: 'auto',
                 orientation: 'auto',
                 reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
                 textMode: textMode,
               }),

  // columns: [[display name, unit, colour steps or null]] for the targets' value fields, in
  // order; hide: display or label names to leave out (Time, __name__, job, instance by default,
  // except those in keep). Grafana's merge joins rows on equal label columns, so every query of
  // a table must return the same label set (join info labels in PromQL).
  table(title, description, targets, columns, w=24, h=9, overrides=[], sortBy=null, hide=[], keep=[])::
    local n = std.length(targets);
    local valueField(i) = if n == 1 then 'Value' else 'Value #' + std.char(65 + i);
    local rename = { [valueField(i)]: columns[i][0] for i in std.range(0, n - 1) };
    local original = { [columns[i][0]]: valueField(i) for i in std.range(0, n - 1) };
    local columnOverrides = [
      {
        matcher: { id: 'byName', options: c[0] },
        properties: [{ id: 'unit', value: c[1] }] + (
          if std.length(c) > 2 && c[2] != null then [
            { id: 'thresholds', value: $.thresholds(c[2]) },
            { id: 'custom.cellOptions', value: { type: 'color-background', mode: 'basic' } },
          ] else []
        ),
      }
      for c in columns
    ];
    local excluded = { [k]: true for k in ['Time', '__name__', 'job', 'instance'] if !std.member(keep, k) }
                     + { [if std.objectHas(original, h) then original[h] else h]: true for h in hide };
    self.panel('table', title, description, targets, w, h,
               { custom: { align: 'auto' }, unit: 'short' },
               { cellHeight: 'sm', showHeader: true }
               + (if sortBy != null then { sortBy: [{ desc: true, displayName: sortBy }] } else {}),
               columnOverrides + overrides,
               [
                 { id: 'merge', options: {} },
                 { id: 'organize', options: { excludeByName: excluded, indexByName: {}, renameByName: rename } },
               ]),

  heatmap(title, description, targets, w=12, h=8, repeat=null, repeatDirection='h')::
    self.panel('heatmap', title, description, targets, w, h, {}, {
      calculate: false,
      cellGap: 1,
      color: { exponent: 0.5, fill: 'dark-orange', mode: 'scheme', reverse: false, scale: 'exponential', scheme: 'Spectral', steps: 64 },
      filterValues: { le: 1e-9 },
      legend: { show: true },
      rowsFrame: { layout: 'auto' },
      tooltip: { mode: 'single', showColorScale: false, yHistogram: true },
      yAxis: { axisPlacement: 'left', unit: 's' },
    }, repeat=repeat, repeatDirection=repeatDirection),

  row(title, repeat=null):: {
    collapsed: false,
    panels: [],
    title: title,
    type: 'row',
    [if repeat != null then 'repeat']: repeat,
  },

  // Places the panels (rows start a new line) and numbers them from 1.
  layout(panels)::
    local step(state, p) =
      local isRow = p.type == 'row';
      local w = if isRow then 24 else p.gridPos.w;
      local h = if isRow then 1 else p.gridPos.h;
      local x0 = if isRow && state.x > 0 then 24 else state.x;
      local wrap = x0 + w > 24;
      local x = if wrap then 0 else x0;
      local y = if wrap then state.y + state.lh else state.y;
      local lh = if wrap then 0 else state.lh;
      {
        x: if isRow then 24 else x + w,
        y: y,
        lh: std.max(lh, h),
        out: state.out + [p { id: std.length(state.out) + 1, gridPos: { x: x, y: y, w: w, h: h } }],
      };
    std.foldl(step, panels, { x: 0, y: 0, lh: 0, out: [] }).out,

  datasourceVariable:: {
    current: { selected: false, text: 'Prometheus', value: '${DS_PROMETHEUS}' },
    hide: 0,
    includeAll: false,
    label: 'Data source',
    multi: false,
    name: 'datasource',
    options: [],
    query: 'prometheus',
    refresh: 1,
    regex: '',
    type: 'datasource',
  },

  queryVariable(name, label, query, multi=false, sort=1, allValue='.+'):: {
    datasource: DS,
    hide: 0,
    includeAll: multi,
    label: label,
    multi: multi,
    name: name,
    options: [],
    query: query,
    refresh: 2,
    regex: '',
    sort: sort,
    type: 'query',
  } + (if multi then { allValue: allValue, current: { selected: true, text: ['All'], value: ['$__all'] } } else {}),

  // A Prometheus annotation query (Grafana's own fields for it: expr, step, titleFormat,
  // textFormat, tagKeys, useValueForTime; tools/check-dashboards.py validates the rest).
  annotation(name, expr, title, text, colour):: {
    datasource: DS,
    enable: true,
    expr: expr,
    hide: false,
    iconColor: colour,
    name: name,
    step: '1m',
    tagKeys: 'instance,domain',
    textFormat: text,
    titleFormat: title,
    useValueForTime: false,
  },

  new(config, key, description, variables, panels, tags, refresh='1m', timeFrom='now-6h', annotations=[])::
    local c = config;
    local laidOut = $.layout(panels);
    {
      __inputs: [{
        description: 'Prometheus that scrapes xen_exporter',
        label: 'Prometheus',
        name: 'DS_PROMETHEUS',
        pluginId: 'prometheus',
        pluginName: 'Prometheus',
        type: 'datasource',
      }],
      __requires: [
        { id: 'grafana', name: 'Grafana', type: 'grafana', version: '11.0.0' },
        { id: 'prometheus', name: 'Prometheus', type: 'datasource', version: '1.0.0' },
      ] + [
        { id: kind, name: std.asciiUpper(kind[0]) + kind[1:], type: 'panel', version: '' }
        for kind in std.set([p.type for p in laidOut if p.type != 'row'])
      ],
      annotations: {
        list: [{
          builtIn: 1,
          datasource: { type: 'grafana', uid: '-- Grafana --' },
          enable: true,
          hide: true,
          iconColor: 'rgba(0, 211, 255, 1)',
          name: 'Annotations & Alerts',
          type: 'dashboard',
        }] + annotations,
      },
      description: description,
      editable: true,
      fiscalYearStartMonth: 0,
      graphTooltip: 1,
      id: null,
      links: [
        {
          asDropdown: false,
          icon: 'dashboard',
          includeVars: true,
          keepTime: true,
          tags: [],
          targetBlank: false,
          title: c.dashboardTitles[k],
          tooltip: 'Open the %s dashboard' % c.dashboardTitles[k],
          type: 'link',
          url: '/d/' + c.dashboardUids[k],
        }
        for k in ['fleet', 'host', 'domain', 'latency', 'noisy']
        if k != key
      ],
      panels: laidOut,
      refresh: refresh,
      schemaVersion: 39,
      tags: c.dashboardTags + tags,
      templating: { list: variables },
      time: { from: timeFrom, to: 'now' },
      timepicker: {},
      timezone: 'browser',
      title: c.dashboardTitles[key],
      uid: c.dashboardUids[key],
      version: 1,
      weekStart: '',
    },
}
