// The step-through of clsnap's trace page (docs/TRACE.md). Reads the
// trace data the page carries and, at step k, shows the state after the
// first k events in step order: tokens per server, messages in flight,
// channels being recorded. No network, no libraries.
(function () {
  'use strict';
  var T = JSON.parse(document.getElementById('trace-data').textContent);
  var S = T.servers, steps = T.steps;
  var slider = document.getElementById('slider');
  var stepEl = document.getElementById('step');
  var stateEl = document.getElementById('state');
  var cursor = document.getElementById('cursor');

  // Step fields: [event id, server, ev, peer, seq, n, snap, tokens, rec].
  function plural(n, word) { return n + ' ' + word + (n === 1 ? '' : 's'); }

  function describe(st) {
    var who = S[st[1]], peer = st[3] >= 0 ? S[st[3]] : '';
    switch (st[2]) {
      case 'send':
        return who + ' sends ' + plural(st[5], 'token') + ' to ' + peer +
            ' (#' + st[4] + ')';
      case 'recv':
        return who + ' receives ' + plural(st[5], 'token') + ' from ' +
            peer + ' (#' + st[4] + ')' + (st[8].length ?
            ': recorded in flight by snapshot ' + st[8].join(', ') : '');
      case 'marker_send':
        return who + ' sends the marker of snapshot ' + st[6] + ' to ' + peer;
      case 'marker_recv':
        return who + ' receives the marker of snapshot ' + st[6] + ' from ' +
            peer;
      case 'record':
        return who + ' records its state for snapshot ' + st[6] + ': ' +
            plural(st[7], 'token');
      case 'done':
        return 'snapshot ' + st[6] + ' is complete at ' + who;
    }
    return st[2];
  }

  // The state after the first k steps, computed from the start.
  function stateAt(k) {
    var tokens = T.tokens.slice(), flight = {}, recording = {}, seen = {};
    var i, st;
    // Messages sent before the trace began are in flight from the start
    // until their receive.
    T.before.forEach(function (m) {
      flight[m[0] + '>' + m[1] + '#' + m[2]] =
          S[m[0]] + '->' + S[m[1]] + ' #' + m[2] + ' (' + m[3] + ')';
    });
    for (i = 0; i < k; i++) {
      st = steps[i];
      tokens[st[1]] = st[7];
      if (st[2] === 'send') {
        if (early[st[1] + '>' + st[3] + '#' + st[4]])
          continue; // received before the receiver's trace began
        flight[st[1] + '>' + st[3] + '#' + st[4]] =
            S[st[1]] + '->' + S[st[3]] + ' #' + st[4] + ' (' + st[5] + ')';
      } else if (st[2] === 'recv') {
        delete flight[st[3] + '>' + st[1] + '#' + st[4]];
      } else if (st[2] === 'marker_send') {
        flight[st[1] + '>' + st[3] + '@' + st[6]] = S[st[1]] + '->' +
            S[st[3]] + ' marker ' + st[6];
      } else if (st[2] === 'marker_recv') {
        delete flight[st[3] + '>' + st[1] + '@' + st[6]];
        delete recording[st[6] + ':' + st[3] + '>' + st[1]];
        seen[st[6] + ':' + st[3] + '>' + st[1]] = true;
      } else if (st[2] === 'record') {
        // Every inbound channel is recorded until its marker comes, but
        // the one whose marker started the recording.
        recordFrom(st, seen, recording);
      }
    }
    return {tokens: tokens, flight: flight, recording: recording};
  }

  function recordFrom(st, seen, recording) {
    T.inbound[st[1]].forEach(function (src) {
      var key = st[6] + ':' + src + '>' + st[1];
      if (!seen[key])
        recording[key] = 'snapshot ' + st[6] + ': ' + S[src] + '->' + S[st[1]];
    });
  }

  var early = {};
  T.early.forEach(function (m) { early[m[0] + '>' + m[1] + '#' + m[2]] = 1; });

  // Inbound channels per server, from the markers and messages seen.
  T.inbound = S.map(function () { return []; });
  steps.forEach(function (st) {
    if ((st[2] === 'recv' || st[2] === 'marker_recv') &&
        T.inbound[st[1]].indexOf(st[3]) < 0)
      T.inbound[st[1]].push(st[3]);
  });

  // Each message of the diagram and the step that sends it (none: sent
  // before the trace). From step 1 on, messages not sent yet are faded;
  // step 0 shows the whole run.
  var sentAt = {}, drawn = [];
  steps.forEach(function (st, i) {
    if (st[2] === 'send')
      sentAt[S[st[1]] + '>' + S[st[3]] + '#' + st[4]] = i;
    else if (st[2] === 'marker_send')
      sentAt[S[st[1]] + '>' + S[st[3]] + '@' + st[6]] = i;
  });
  Array.prototype.forEach.call(document.querySelectorAll('g.msg'),
    function (el) {
      var key = el.getAttribute('data-src') + '>' + el.getAttribute('data-dst') +
          (el.classList.contains('marker') ? '@' + el.getAttribute('data-snap')
                                           : '#' + el.getAttribute('data-seq'));
      drawn.push({el: el, at: key in sentAt ? sentAt[key] : -1});
    });

  function values(o) {
    return Object.keys(o).map(function (k) { return o[k]; });
  }

  function show(k) {
    var s = stateAt(k), lines = [], total = 0, inflight = 0, el;
    slider.value = k;
    stepEl.textContent = k === 0 ?
        'step 0 of ' + steps.length + ': the start' :
        'step ' + k + ' of ' + steps.length + ': ' + describe(steps[k - 1]);
    lines.push('tokens: ' + S.map(function (name, i) {
      total += s.tokens[i];
      return name + ' ' + s.tokens[i];
    }).join(' | '));
    values(s.flight).forEach(function (m) {
      var n = /\((\d+)\)$/.exec(m);
      if (n) inflight += Number(n[1]);
    });
    lines.push('held ' + total + ' + in flight ' + inflight + ' = ' +
        (total + inflight));
    lines.push('in flight: ' + (values(s.flight).join(', ') || 'nothing'));
    lines.push('recording: ' + (values(s.recording).join(', ') || 'none'));
    stateEl.textContent = lines.join('\n');
    drawn.forEach(function (d) {
      d.el.style.opacity = k === 0 || d.at < k ? '1' : '0.15';
    });
    el = k > 0 ? document.getElementById('e' + steps[k - 1][0]) : null;
    if (el && cursor) {
      var x = el.getAttribute('cx'), y = el.getAttribute('cy');
      if (x === null) {
        x = Number(el.getAttribute('x')) + 5;
        y = Number(el.getAttribute('y')) + 5;
      }
      cursor.setAttribute('cx', x);
      cursor.setAttribute('cy', y);
    } else if (cursor) {
      cursor.setAttribute('cx', -20);
      cursor.setAttribute('cy', -20);
    }
  }

  function go(k) { show(Math.max(0, Math.min(steps.length, k))); }
  document.getElementById('prev').addEventListener('click', function () {
    go(Number(slider.value) - 1);
  });
  document.getElementById('next').addEventListener('click', function () {
    go(Number(slider.value) + 1);
  });
  slider.addEventListener('input', function () { go(Number(slider.value)); });
  document.addEventListener('keydown', function (e) {
    if (e.key === 'ArrowLeft') go(Number(slider.value) - 1);
    if (e.key === 'ArrowRight') go(Number(slider.value) + 1);
  });
  show(0);
})();
