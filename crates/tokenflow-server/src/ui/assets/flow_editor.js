// The flow editor (docs/flows.md, "Editing flows in the browser"): a textarea with a line-number
// gutter that follows its scrolling and editing, validated as you type through
// POST /flows/validate (the session's CSRF token in the x-csrf-token header). Every problem is
// marked at its line (in the gutter, and with its message beside the line) and listed below; the
// diagram preview is redrawn from the server's SVG; an invalid flow cannot be submitted. Without
// this script the form still works: the server validates on save and shows the problems.
(function () {
  'use strict';
  var form = document.getElementById('flow-edit-form');
  if (!form || !window.fetch) {
    return;
  }
  var text = document.getElementById('yaml-editor');
  var gutter = document.getElementById('gutter');
  var markers = document.getElementById('markers-inner');
  var list = document.getElementById('problems');
  var warningList = document.getElementById('warnings');
  var status = document.getElementById('validation-status');
  var save = document.getElementById('save');
  var preview = document.getElementById('preview');
  var flow = form.getAttribute('data-flow');
  var csrf = form.getAttribute('data-csrf');
  var PAD = 8; // the textarea's top padding, in px (flow-editor.css)
  var problems = [];
  var sequence = 0;
  var timer = null;

  Array.prototype.forEach.call(list.querySelectorAll('li.problem'), function (item) {
    problems.push({
      line: Number(item.getAttribute('data-line')),
      column: Number(item.getAttribute('data-column')),
      message: item.getAttribute('data-message')
    });
  });
  form.classList.add('live');

  // The width of one character of the editor's monospace font.
  var charWidth = (function () {
    var probe = document.createElement('span');
    probe.textContent = '0000000000';
    probe.style.position = 'absolute';
    probe.style.visibility = 'hidden';
    probe.style.whiteSpace = 'pre';
    probe.style.font = window.getComputedStyle(text).font;
    document.body.appendChild(probe);
    var width = probe.getBoundingClientRect().width / 10;
    probe.remove();
    return width || 8;
  })();

  function lineHeight() {
    return parseFloat(window.getComputedStyle(text).lineHeight) || 18;
  }

  function messagesByLine() {
    var byLine = {};
    problems.forEach(function (p) {
      var text = 'column ' + p.column + ': ' + p.message;
      byLine[p.line] = byLine[p.line] ? byLine[p.line] + '; ' + text : text;
    });
    return byLine;
  }

  // The gutter (one number a line, problem lines marked) and the messages beside their lines.
  function draw() {
    var lines = text.value.split('\n').length;
    var byLine = messagesByLine();
    var numbers = document.createDocumentFragment();
    for (var n = 1; n <= lines; n++) {
      var ln = document.createElement('div');
      ln.className = byLine[n] ? 'ln bad' : 'ln';
      ln.setAttribute('data-line', String(n));
      ln.textContent = String(n);
      if (byLine[n]) {
        ln.title = byLine[n];
      }
      numbers.appendChild(ln);
    }
    gutter.replaceChildren(numbers);
    var height = lineHeight();
    var notes = document.createDocumentFragment();
    Object.keys(byLine).forEach(function (line) {
      var note = document.createElement('div');
      note.className = 'marker';
      note.setAttribute('data-line', line);
      note.style.top = (PAD + (Number(line) - 1) * height) + 'px';
      note.textContent = byLine[line];
      note.title = byLine[line];
      notes.appendChild(note);
    });
    markers.replaceChildren(notes);
    follow();
  }

  // Keeps the gutter and the markers at the textarea's scroll position; a message stands two
  // characters after the end of its line, or at the middle of the editor for a long line.
  function follow() {
    gutter.scrollTop = text.scrollTop;
    markers.style.transform = 'translateY(' + (-text.scrollTop) + 'px)';
    var lines = text.value.split('\n');
    var widest = text.offsetLeft + text.clientWidth / 2;
    Array.prototype.forEach.call(markers.children, function (note) {
      var line = lines[Number(note.getAttribute('data-line')) - 1] || '';
      var end = text.offsetLeft + PAD + (line.length + 2) * charWidth - text.scrollLeft;
      note.style.left = Math.max(text.offsetLeft, Math.min(end, widest)) + 'px';
    });
  }

  function item(className, p) {
    var li = document.createElement('li');
    li.className = className;
    li.setAttribute('data-line', String(p.line));
    li.setAttribute('data-column', String(p.column));
    li.textContent = 'line ' + p.line + ', column ' + p.column + ': ' + p.message;
    return li;
  }

  function show(result) {
    problems = result.problems;
    list.replaceChildren.apply(list, problems.map(function (p) { return item('problem', p); }));
    warningList.replaceChildren.apply(warningList, result.warnings.map(function (w) { return item('warning', w); }));
    if (result.valid) {
      status.className = 'ok';
      status.textContent = 'Valid.';
    } else {
      status.className = 'error';
      status.textContent = problems.length + (problems.length === 1 ? ' problem' : ' problems') + ': fix before saving.';
    }
    save.disabled = !result.valid;
    if (result.diagram_svg) {
      // The server's own SVG, drawn from the validated flow with every text escaped.
      preview.innerHTML = result.diagram_svg;
      preview.classList.remove('stale');
    } else {
      preview.classList.add('stale');
    }
    draw();
  }

  function validate() {
    var mine = ++sequence;
    status.className = 'muted';
    status.textContent = 'Checking…';
    var url = '/flows/validate' + (flow ? '?id=' + encodeURIComponent(flow) : '');
    fetch(url, {
      method: 'POST',
      credentials: 'same-origin',
      headers: { 'content-type': 'application/yaml', 'x-csrf-token': csrf },
      body: text.value
    })
      .then(function (response) {
        if (!response.ok) {
          throw new Error('status ' + response.status);
        }
        return response.json();
      })
      .then(function (result) {
        if (mine === sequence) {
          show(result);
        }
      })
      .catch(function () {
        if (mine === sequence) {
          // Saving validates again on the server, so a failed check blocks nothing.
          status.className = 'warning';
          status.textContent = 'The flow could not be checked just now; saving checks it.';
          save.disabled = false;
        }
      });
  }

  // Clicking a problem puts the cursor at its line and column.
  list.addEventListener('click', function (event) {
    var li = event.target.closest('li[data-line]');
    if (!li) {
      return;
    }
    var lines = text.value.split('\n');
    var line = Math.min(Number(li.getAttribute('data-line')), lines.length);
    var offset = 0;
    for (var i = 0; i < line - 1; i++) {
      offset += lines[i].length + 1;
    }
    offset += Math.min(Number(li.getAttribute('data-column')) - 1, lines[line - 1].length);
    text.focus();
    text.setSelectionRange(offset, offset);
    text.scrollTop = Math.max(0, (line - 3) * lineHeight());
    follow();
  });

  text.addEventListener('input', function () {
    draw();
    window.clearTimeout(timer);
    timer = window.setTimeout(validate, 250);
  });
  text.addEventListener('scroll', follow);
  form.addEventListener('submit', function (event) {
    if (save.disabled) {
      event.preventDefault();
    }
  });
  draw();
  validate();
})();
