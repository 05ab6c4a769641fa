# Long-lived PowerShell host for the emulator: runs composed payloads against a Windows double,
# each in a fresh runspace, so a Run Command costs tens of milliseconds instead of a process start.
#
# Started once as `pwsh -NoProfile -NonInteractive -File host.ps1` by emulator/powershell.ts.
# Protocol: newline-delimited JSON (UTF-8), one request per stdin line, one response per stdout
# line. Nothing else is written to stdout: Console.Out is pointed at stderr before anything runs,
# and responses go through a private writer on the process's standard output. Diagnostics go to
# stderr; RR_PWSH_HOST_TRACE=1 adds each run's phase timings.
#
# Request:  { id, script, parameters: [{name, value}], state, doublePath, stateSchema?, timeoutMs? }
#           { id, ping: true }                 answered with { id, pong: true, psVersion, pid }
# Response: { id, stdout, stderr, state, writes, replaced, durationMs }
#           { id, hostError, timedOut? }       the host, not the payload, failed; it keeps serving
# timeoutMs: the payload's pipeline is stopped after that long (answered with timedOut: true).
#
# Asks (the oracle channel): while a run goes, the double may put a question to the client
# about the Windows model (emulator/windows.ts) and wait for one answer, in the middle of the
# run, on the same two streams:
# Ask:      { id, ask: 'rdp-handshake', seq, state, address, port, timeoutMs }   host -> client
#           id is the run's request id, seq counts the run's asks from 1; the fields after seq
#           are the double's (state: the machine state as the double holds it at that moment).
# Answer:   { id, seq, answer }               client -> host: answer is the model's JSON object
#           { id, seq, askError }              the client's handler failed; the double throws it
# The double reaches the channel through $global:RrDouble.Ask, an [RrAsk] made for the run: a
# class without runspace affinity, so its Ask() runs on the payload's thread with nothing of
# this runspace. The host's loop does not read stdin while a run goes, so the run's asks are
# the only reader then. A run stopped while it waits (timeout) leaves that read pending; the
# loop takes the late line first and drops it, as it drops any answer that comes after its run.
# RR_PWSH_HOST_CLIENT_PID: the client's pid; when it is gone in the middle of a run, the host
# exits (between runs it sees stdin close).
#
# A run, in order:
#   1. Test-Json the state against stateSchema, when given (a mismatch is a hostError).
#   2. Parse the payload (once per payload text and double: they repeat, values travel as
#      parameters); parse errors become stderr, as PowerShell prints them, and nothing runs.
#   3. Cut out every top-level function the payload defines that the double also provides (the
#      double's top-level functions whose names do not match -RrDouble), last first. The cut
#      keeps the line breaks it removes, so error positions carry the composed payload's lines.
#   4. In a fresh runspace: $global:RrDouble = @{ State; Writes; WriteCount; Ask }, dot-source the
#      double at global scope, then run the payload as the Run Command agent does: saved as
#      script0.ps1 and called with `-Name value` tokens that are not quoted, so a value is split
#      at white space, `^` is removed, and an empty value leaves `-Name` with no argument.
#   5. stdout: the success stream formatted as Out-String -Stream does (width 120), with
#      Write-Host lines and `WARNING: ` lines in their places (the console host prints both to
#      stdout), joined with "\n", no trailing newline. Verbose, debug, progress and
#      Write-Information are dropped. stderr: each error record, then the terminating error, in
#      Windows PowerShell 5.1's console view (message, position, CategoryInfo,
#      FullyQualifiedErrorId), joined with "\n".
#   6. state: $global:RrDouble.State as the double left it; writes: $global:RrDouble.Writes.
#      Serialised with ConvertTo-Json -Depth 30 -Compress straight from the dictionaries, so an
#      array value stays a JSON array whatever its length.

#Requires -Version 7.4
[CmdletBinding()]
param()

Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$WarningPreference = 'SilentlyContinue'
$InformationPreference = 'SilentlyContinue'
$VerbosePreference = 'SilentlyContinue'
$PSStyle.OutputRendering = [System.Management.Automation.OutputRendering]::PlainText

$Utf8 = [System.Text.UTF8Encoding]::new($false)
$ProtocolOut = [System.IO.StreamWriter]::new([Console]::OpenStandardOutput(), $Utf8)
$ProtocolOut.AutoFlush = $false
$ProtocolOut.NewLine = "`n"
$ProtocolIn = [System.IO.StreamReader]::new([Console]::OpenStandardInput(), $Utf8)
# Anything else that writes to the console (the host's own errors, [Console]::WriteLine in a
# payload or a double) lands on stderr, and nothing but this loop can read the requests.
[Console]::SetOut([Console]::Error)
[Console]::SetIn([System.IO.StringReader]::new(''))

# CreateDefault, not CreateDefault2: it carries the built-in modules' commands (ConvertTo-Json,
# Get-Date, Join-Path, Write-Host, ...) as entries of the session state, which a runspace opens
# with in about half the time CreateDefault2 needs to import those modules (ImportPSModule), and
# the payload then does not auto-load them mid-run either (measured on 7.6.9: 12-22 ms against
# 21-53 ms to open a runspace and run a line that uses them).
$SessionTemplate = [System.Management.Automation.Runspaces.InitialSessionState]::CreateDefault()
if ($IsWindows) { $SessionTemplate.ExecutionPolicy = [Microsoft.PowerShell.ExecutionPolicy]::Bypass }

# The agent saves the script as script0.ps1; one folder per host process, rewritten per run.
$WorkDir = [System.IO.Directory]::CreateTempSubdirectory('rr-pwsh-host-').FullName
$ScriptPath = [System.IO.Path]::Combine($WorkDir, 'script0.ps1')

$DoubleCache = @{}
# Payload text -> what running it needs (parse errors, or the cut script and the names cut), for
# the double it was cut for. Payloads repeat (values travel as parameters), and parsing one of
# the composed payloads costs tens of milliseconds.
$PreparedCache = [System.Collections.Generic.Dictionary[string, hashtable]]::new([System.StringComparer]::Ordinal)
$script:SpareRunspace = $null
# The text script0.ps1 holds, so that the same payload is not written again.
$script:Written = $null
$Trace = $env:RR_PWSH_HOST_TRACE -eq '1'
# The client's process id (RR_PWSH_HOST_CLIENT_PID): a run that outlives the client is ended.
$ClientPid = 0
if (-not [int]::TryParse([string]$env:RR_PWSH_HOST_CLIENT_PID, [ref]$ClientPid)) { $ClientPid = 0 }

function Write-HostDiagnostic([string]$Message) {
    [Console]::Error.WriteLine('[host.ps1] ' + $Message)
}

function Write-RrTrace([System.Diagnostics.Stopwatch]$Clock, [string]$Phase) {
    if ($Trace) { Write-HostDiagnostic ('{0,8:N1} ms  {1}' -f $Clock.Elapsed.TotalMilliseconds, $Phase) }
}

# ---------------------------------------------------------------------------------------------
# The protocol's streams, shared by this loop and a run's asks (never at the same time).

# No runspace affinity: a run's thread calls these methods while this runspace waits for it.
[NoRunspaceAffinity()]
class RrProtocol {
    hidden [System.IO.StreamWriter]$Out
    hidden [System.IO.StreamReader]$In
    # A read that was not awaited to the end (a stopped run's ask); the next reader takes its line.
    hidden [System.Threading.Tasks.Task[string]]$Pending = $null
    hidden [object]$WriteLock = [object]::new()

    RrProtocol([System.IO.StreamWriter]$Out, [System.IO.StreamReader]$In) {
        $this.Out = $Out
        $this.In = $In
    }

    [void] WriteLine([string]$Line) {
        [System.Threading.Monitor]::Enter($this.WriteLock)
        try {
            $this.Out.WriteLine($Line)
            $this.Out.Flush()
        }
        finally { [System.Threading.Monitor]::Exit($this.WriteLock) }
    }

    # Whether the next line has come within WaitMs (-1: however long it takes); Take() returns it.
    [bool] Wait([int]$WaitMs) {
        if ($null -eq $this.Pending) { $this.Pending = $this.In.ReadLineAsync() }
        return $this.Pending.Wait($WaitMs)
    }

    # The line Wait() saw come, or $null at the end of the input. [object], not [string]: a
    # [string] method would return '' for $null, and the end of the input would look like a blank line.
    [object] Take() {
        $task = $this.Pending
        $this.Pending = $null
        return $task.GetAwaiter().GetResult()
    }

    [object] ReadLine() {
        $null = $this.Wait(-1)
        return $this.Take()
    }
}

# One run's handle on the oracle channel, as $global:RrDouble.Ask.
[NoRunspaceAffinity()]
class RrAsk {
    hidden [RrProtocol]$Protocol
    # The run's request id as JSON text (a number or a string).
    hidden [string]$IdJson
    hidden [int]$Count = 0
    # Set by the host when it stops the run: an ask waiting for its answer gives up.
    [bool]$Cancelled = $false

    RrAsk([RrProtocol]$Protocol, [string]$IdJson) {
        $this.Protocol = $Protocol
        $this.IdJson = $IdJson
    }

    # Sends one ask (Kind, and BodyJson: a JSON object of its fields) and returns the answer's
    # JSON text; throws the client's askError, or when the run is stopped while it waits.
    [string] Ask([string]$Kind, [string]$BodyJson) {
        if ($Kind -notmatch '^[a-z]+(-[a-z]+)*$') { throw [System.ArgumentException]::new("ask kind '$Kind' is not a lower-case word list") }
        $body = $BodyJson.Trim()
        if (-not $body.StartsWith('{') -or -not $body.EndsWith('}')) { throw [System.ArgumentException]::new('an ask body is a JSON object') }
        $this.Count++
        $seq = $this.Count
        $fields = $body.Substring(1).TrimStart()
        $line = '{"id":' + $this.IdJson + ',"ask":"' + $Kind + '","seq":' + $seq
        if ($fields -ne '}') { $line += ',' + $fields } else { $line += '}' }
        $this.Protocol.WriteLine($line)
        while (-not $this.Protocol.Wait(250)) {
            if ($this.Cancelled) { throw [System.OperationCanceledException]::new("the run was stopped while ask $seq ($Kind) waited for its answer") }
        }
        $answer = $this.Protocol.Take()
        if ($null -eq $answer) { throw [System.IO.EndOfStreamException]::new("the client closed the protocol while ask $seq ($Kind) waited for its answer") }
        $doc = [System.Text.Json.JsonDocument]::Parse($answer)
        try {
            $root = $doc.RootElement
            $el = [System.Text.Json.JsonElement]::new()
            $number = [System.Text.Json.JsonValueKind]::Number
            if (-not $root.TryGetProperty('seq', [ref]$el) -or $el.ValueKind -ne $number -or $el.GetInt32() -ne $seq) {
                throw [System.IO.InvalidDataException]::new("the client did not answer ask ${seq}: " + $answer.Substring(0, [Math]::Min(200, $answer.Length)))
            }
            if ($root.TryGetProperty('askError', [ref]$el)) { throw [System.InvalidOperationException]::new([string]$el.ToString()) }
            if (-not $root.TryGetProperty('answer', [ref]$el)) { throw [System.IO.InvalidDataException]::new("the answer to ask $seq has neither answer nor askError") }
            return $el.GetRawText()
        }
        finally { $doc.Dispose() }
    }
}

$Protocol = [RrProtocol]::new($ProtocolOut, $ProtocolIn)

# ---------------------------------------------------------------------------------------------
# Script text and the command line.

class RrScript {
    static [string] Unqualified([string]$Name) {
        return [regex]::Replace($Name, '^(?i:global|script|local|private):', '')
    }

    # Function definitions that are statements of the script's own blocks (not nested in anything).
    static [System.Collections.Generic.List[System.Management.Automation.Language.FunctionDefinitionAst]] TopLevelFunctions([System.Management.Automation.Language.ScriptBlockAst]$Ast) {
        $found = [System.Collections.Generic.List[System.Management.Automation.Language.FunctionDefinitionAst]]::new()
        foreach ($block in @($Ast.DynamicParamBlock, $Ast.BeginBlock, $Ast.ProcessBlock, $Ast.EndBlock, $Ast.CleanBlock)) {
            if ($null -eq $block) { continue }
            foreach ($statement in $block.Statements) {
                if ($statement -is [System.Management.Automation.Language.FunctionDefinitionAst]) { $found.Add($statement) }
            }
        }
        return $found
    }

    # The payload without its own definitions of the double's functions, and their names.
    static [hashtable] CutReplaced([string]$Script, [System.Management.Automation.Language.ScriptBlockAst]$Ast, [System.Collections.Generic.HashSet[string]]$DoubleNames) {
        $cuts = [System.Collections.Generic.List[System.Management.Automation.Language.IScriptExtent]]::new()
        $replaced = [System.Collections.Generic.List[string]]::new()
        foreach ($fn in [RrScript]::TopLevelFunctions($Ast)) {
            $name = [RrScript]::Unqualified($fn.Name)
            if ($DoubleNames.Contains($name)) {
                $cuts.Add($fn.Extent)
                if (-not $replaced.Contains($name)) { $replaced.Add($name) }
            }
        }
        $text = [System.Text.StringBuilder]::new($Script)
        for ($i = $cuts.Count - 1; $i -ge 0; $i--) {
            $extent = $cuts[$i]
            $lineBreaks = [regex]::Replace($extent.Text, '[^\r\n]+', '')
            $null = $text.Remove($extent.StartOffset, $extent.EndOffset - $extent.StartOffset).Insert($extent.StartOffset, $lineBreaks)
        }
        return @{ Script = $text.ToString(); Replaced = [string[]]$replaced.ToArray() }
    }

    static [string] Quote([string]$Text) {
        return "'" + [System.Management.Automation.Language.CodeGeneration]::EscapeSingleQuotedStringContent($Text) + "'"
    }

    # `& '<script0.ps1>' -Name 'piece' ...`: the agent's unquoted command line, token by token.
    static [string] Invocation([string]$Path, [System.Collections.Generic.List[object]]$Parameters) {
        $line = [System.Text.StringBuilder]::new()
        $null = $line.Append('& ').Append([RrScript]::Quote($Path))
        foreach ($p in $Parameters) {
            $name = [string]$p.Name
            if ($name -notmatch '^[A-Za-z_][A-Za-z0-9_]*$') { throw "parameter name '$name' is not a PowerShell parameter name" }
            $null = $line.Append(' -').Append($name)
            foreach ($piece in [regex]::Split(([string]$p.Value).Replace('^', ''), '\s+')) {
                if ($piece.Length -gt 0) { $null = $line.Append(' ').Append([RrScript]::Quote($piece)) }
            }
        }
        # Write-Host and warnings reach the console, hence stdout, in their places.
        $null = $line.Append(' 6>&1 3>&1')
        return $line.ToString()
    }
}

# ---------------------------------------------------------------------------------------------
# Errors as Windows PowerShell 5.1's console prints them (its default NormalView).

function Format-RrErrorRecord([System.Management.Automation.ErrorRecord]$Record) {
    $inv = $Record.InvocationInfo
    $fqid = [string]$Record.FullyQualifiedErrorId
    $prefix = ''
    if ($null -ne $inv -and $fqid -ne 'NativeCommandErrorMessage' -and $fqid -ne 'NativeCommandError') {
        $command = $inv.MyCommand
        if ($null -ne $command) {
            if ($command.CommandType -eq [System.Management.Automation.CommandTypes]::ExternalScript) {
                if ($command.Path) { $prefix = $command.Path + ' : ' }
            }
            elseif ($command.CommandType -ne [System.Management.Automation.CommandTypes]::Script) {
                if ($inv.InvocationName -match '^[&.]?$') { if ($command.Name) { $prefix = $command.Name + ' : ' } }
                else { $prefix = $inv.InvocationName + ' : ' }
            }
        }
        elseif ($inv.InvocationName) { $prefix = $inv.InvocationName + ' : ' }
    }
    $message = if ($null -ne $Record.ErrorDetails -and $Record.ErrorDetails.Message) { $Record.ErrorDetails.Message } else { $Record.Exception.Message }
    $text = [System.Text.StringBuilder]::new()
    $null = $text.Append($prefix).Append($message)
    # A position in the command line this host builds (no script name) is not the payload's;
    # powershell.exe -File shows none there either.
    if ($null -ne $inv -and $inv.ScriptName -and $inv.PositionMessage) {
        $null = $text.Append("`n").Append($inv.PositionMessage)
    }
    $null = $text.Append("`n    + CategoryInfo          : ").Append($Record.CategoryInfo.ToString())
    $null = $text.Append("`n    + FullyQualifiedErrorId : ").Append($fqid)
    return $text.ToString()
}

function Format-RrParseErrors([System.Management.Automation.Language.ParseError[]]$Errors) {
    $exception = [System.Management.Automation.ParseException]::new($Errors)
    return $exception.Message.TrimEnd() +
        "`n    + CategoryInfo          : ParserError: (:) [], ParseException" +
        "`n    + FullyQualifiedErrorId : " + $Errors[0].ErrorId
}

function Get-RrErrorRecord([System.Exception]$Exception) {
    $e = $Exception
    while ($null -ne $e) {
        if ($e -is [System.Management.Automation.IContainsErrorRecord] -and $e -isnot [System.Management.Automation.MethodInvocationException] -and $null -ne $e.ErrorRecord) {
            return $e.ErrorRecord
        }
        $e = $e.InnerException
    }
    return [System.Management.Automation.ErrorRecord]::new($Exception, $Exception.GetType().Name, [System.Management.Automation.ErrorCategory]::NotSpecified, $null)
}

# ---------------------------------------------------------------------------------------------

function Get-RrDoubleFunctionNames([string]$Path) {
    $info = [System.IO.FileInfo]::new($Path)
    if (-not $info.Exists) { throw "the Windows double $Path does not exist" }
    $stamp = '{0}|{1}' -f $info.LastWriteTimeUtc.Ticks, $info.Length
    $cached = $DoubleCache[$Path]
    if ($null -ne $cached -and $cached.Stamp -eq $stamp) { return , $cached.Names }
    $tokens = $null
    $errors = $null
    $ast = [System.Management.Automation.Language.Parser]::ParseFile($Path, [ref]$tokens, [ref]$errors)
    if ($errors.Count -gt 0) { throw "the Windows double does not parse:`n" + (Format-RrParseErrors $errors) }
    $names = [System.Collections.Generic.HashSet[string]]::new([System.StringComparer]::OrdinalIgnoreCase)
    foreach ($fn in [RrScript]::TopLevelFunctions($ast)) {
        $name = [RrScript]::Unqualified($fn.Name)
        if ($name -notmatch '-RrDouble') { $null = $names.Add($name) }
    }
    $DoubleCache[$Path] = @{ Stamp = $stamp; Names = $names }
    return , $names
}

# Parses the payload and cuts the double's functions out of it, once per payload text and double.
function Get-RrPreparedScript([string]$Script, [string]$DoublePath) {
    $names = Get-RrDoubleFunctionNames $DoublePath
    $doubleKey = $DoublePath + '|' + $DoubleCache[$DoublePath].Stamp
    $prepared = $null
    if ($PreparedCache.TryGetValue($Script, [ref]$prepared) -and $prepared.DoubleKey -eq $doubleKey) { return $prepared }
    $tokens = $null
    $parseErrors = $null
    $ast = [System.Management.Automation.Language.Parser]::ParseInput($Script, $ScriptPath, [ref]$tokens, [ref]$parseErrors)
    if ($parseErrors.Count -gt 0) {
        $prepared = @{ DoubleKey = $doubleKey; ParseErrors = (Format-RrParseErrors $parseErrors); Script = $null; Replaced = [string[]]::new(0) }
    }
    else {
        $cut = [RrScript]::CutReplaced($Script, $ast, $names)
        $prepared = @{ DoubleKey = $doubleKey; ParseErrors = $null; Script = $cut.Script; Replaced = $cut.Replaced }
    }
    if ($PreparedCache.Count -ge 32) { $PreparedCache.Clear() }
    $PreparedCache[$Script] = $prepared
    return $prepared
}

# Runspaces. The next one is opened after a response has gone out, while the client is busy.
# (Opening it with OpenAsync during the run was tried: the run then finds a runspace whose
# opening pipeline is still busy, and both slow down on two cores.)
function Get-RrFreshRunspace {
    $rs = $script:SpareRunspace
    $script:SpareRunspace = $null
    if ($null -eq $rs) {
        $rs = [runspacefactory]::CreateRunspace($SessionTemplate)
        $rs.Open()
    }
    return $rs
}

function Open-RrSpareRunspace {
    if ($null -ne $script:SpareRunspace) { return }
    try {
        $clock = [System.Diagnostics.Stopwatch]::StartNew()
        $rs = [runspacefactory]::CreateRunspace($SessionTemplate)
        $rs.Open()
        $script:SpareRunspace = $rs
        Write-RrTrace $clock 'spare runspace opened'
    }
    catch { Write-HostDiagnostic ('could not open a spare runspace: ' + $_.Exception.Message) }
}

function ConvertTo-RrStdout([System.Management.Automation.PSDataCollection[psobject]]$Output) {
    $lines = [System.Collections.Generic.List[string]]::new()
    $batch = [System.Collections.Generic.List[object]]::new()
    $pending = ''
    $flush = {
        if ($batch.Count -gt 0) {
            foreach ($l in ($batch | Out-String -Stream -Width 120)) { $lines.Add($pending + $l); $pending = '' }
            $batch.Clear()
        }
    }
    foreach ($o in $Output) {
        $base = if ($null -eq $o) { $null } else { $o.psobject.BaseObject }
        if ($base -is [string] -and $batch.Count -eq 0) {
            # The usual case, and what Out-String would print for it. (After other objects a
            # string joins their batch: the formatter decides where the blank lines go.)
            $lines.Add($pending + $base); $pending = ''
        }
        elseif ($base -is [System.Management.Automation.InformationRecord]) {
            . $flush
            if ($base.Tags -contains 'PSHOST') {
                $data = $base.MessageData
                $text = [string]$data
                if ($data -is [System.Management.Automation.HostInformationMessage] -and $data.NoNewLine) { $pending += $text }
                else { $lines.Add($pending + $text); $pending = '' }
            }
        }
        elseif ($base -is [System.Management.Automation.WarningRecord]) {
            . $flush
            $lines.Add($pending + 'WARNING: ' + $base.Message); $pending = ''
        }
        elseif ($null -ne $o) { $batch.Add($o) }
    }
    . $flush
    if ($pending -ne '') { $lines.Add($pending) }
    return [string]::Join("`n", $lines)
}

# Waits for the payload's pipeline. Past the request's timeoutMs it stops the pipeline and
# throws a TimeoutException; if the client process is gone it exits, so that a payload that
# never ends does not outlive it.
function Wait-RrPipeline([powershell]$PowerShell, [System.IAsyncResult]$Async, [long]$TimeoutMs, [System.Diagnostics.Stopwatch]$Clock, [RrAsk]$Ask) {
    $started = $Clock.ElapsedMilliseconds
    while (-not $Async.AsyncWaitHandle.WaitOne(250)) {
        if (-not (Test-RrClientAlive)) {
            Write-HostDiagnostic 'the client process is gone; exiting in the middle of a run'
            try { [System.IO.Directory]::Delete($WorkDir, $true) } catch { $null = $_ }
            [System.Environment]::Exit(3)
        }
        if ($TimeoutMs -gt 0 -and $Clock.ElapsedMilliseconds - $started -ge $TimeoutMs) {
            # An ask waiting for its answer is a .NET call the stop cannot interrupt: it gives up by itself.
            $Ask.Cancelled = $true
            $stop = $PowerShell.BeginStop($null, $null)
            if (-not $stop.AsyncWaitHandle.WaitOne(5000)) {
                # A blocking .NET call PowerShell cannot interrupt: the client kills this process.
                Write-HostDiagnostic "the payload did not stop within 5 s of its $TimeoutMs ms timeout"
            }
            throw [System.TimeoutException]::new("the payload ran longer than $TimeoutMs ms and was stopped")
        }
    }
}

function Test-RrClientAlive {
    if ($ClientPid -le 0) { return $true }
    try { return -not [System.Diagnostics.Process]::GetProcessById($ClientPid).HasExited }
    catch { return $false }
}

function Invoke-RrRequest($Request, [System.Diagnostics.Stopwatch]$Clock) {
    if ($Request.StateSchema) {
        $errorsFound = $null
        if (-not (Test-Json -Json $Request.StateJson -Schema $Request.StateSchema -ErrorAction SilentlyContinue -ErrorVariable errorsFound)) {
            $details = @($errorsFound | ForEach-Object { $_.Exception.Message }) -join '; '
            throw "the state does not match the state schema: $details"
        }
        Write-RrTrace $Clock 'state checked against the schema'
    }

    $prepared = Get-RrPreparedScript $Request.Script $Request.DoublePath
    if ($null -ne $prepared.ParseErrors) {
        return [ordered]@{
            id = $Request.Id; stdout = ''; stderr = $prepared.ParseErrors
            state = (ConvertFrom-Json -InputObject $Request.StateJson -AsHashtable -DateKind String)
            writes = [object[]]::new(0); replaced = [string[]]::new(0); durationMs = [math]::Round($Clock.Elapsed.TotalMilliseconds, 1)
        }
    }
    if (-not [object]::ReferenceEquals($script:Written, $prepared.Script) -or -not [System.IO.File]::Exists($ScriptPath)) {
        [System.IO.File]::WriteAllText($ScriptPath, $prepared.Script, $Utf8)
        $script:Written = $prepared.Script
    }
    $invocation = [RrScript]::Invocation($ScriptPath, $Request.Parameters)
    Write-RrTrace $Clock 'parsed (or cached), functions cut, script0.ps1 written'

    $ask = [RrAsk]::new($Protocol, (ConvertTo-Json -InputObject $Request.Id -Compress))
    $rrDouble = @{
        State      = (ConvertFrom-Json -InputObject $Request.StateJson -AsHashtable -DateKind String)
        Writes     = [System.Collections.Generic.List[object]]::new()
        WriteCount = 0
        Ask        = $ask
    }
    $runspace = Get-RrFreshRunspace
    $ps = [powershell]::Create()
    try {
        $ps.Runspace = $runspace
        $runspace.SessionStateProxy.SetVariable('RrDouble', $rrDouble)

        $null = $ps.AddScript('. ' + [RrScript]::Quote($Request.DoublePath), $false)
        try { $null = $ps.Invoke() }
        catch { throw ('the Windows double failed to load: ' + (Format-RrErrorRecord (Get-RrErrorRecord $_.Exception))) }
        if ($ps.Streams.Error.Count -gt 0) {
            throw ('the Windows double failed to load: ' + (@($ps.Streams.Error | ForEach-Object { Format-RrErrorRecord $_ }) -join "`n"))
        }
        $ps.Commands.Clear()
        $ps.Streams.ClearStreams()
        Write-RrTrace $Clock 'double loaded'

        $null = $ps.AddScript($invocation, $false)
        $output = [System.Management.Automation.PSDataCollection[psobject]]::new()
        $terminating = $null
        $async = $ps.BeginInvoke([System.Management.Automation.PSDataCollection[psobject]]$null, $output)
        Wait-RrPipeline $ps $async $Request.TimeoutMs $Clock $ask
        try { $null = $ps.EndInvoke($async) }
        catch {
            $reason = $ps.InvocationStateInfo.Reason
            if ($null -eq $reason) { $reason = $_.Exception }
            $terminating = Get-RrErrorRecord $reason
        }
        Write-RrTrace $Clock 'payload ran'
        $errorTexts = [System.Collections.Generic.List[string]]::new()
        foreach ($record in $ps.Streams.Error) { $errorTexts.Add((Format-RrErrorRecord $record)) }
        if ($null -ne $terminating) { $errorTexts.Add((Format-RrErrorRecord $terminating)) }
        $stdout = ConvertTo-RrStdout $output

        # The state goes out as the double left it. Its arrays are object[] (ConvertFrom-Json) or
        # whatever the double assigned; ConvertTo-Json writes any array or list value of a
        # dictionary as a JSON array, one element or none included, because nothing here passes
        # them through a pipeline. A value the double assigned from a pipeline without @() (a
        # scalar or $null where the schema wants an array) is put right by the client, which
        # knows the schema (emulator/powershell.ts).
        $after = $runspace.SessionStateProxy.GetVariable('RrDouble')
        if ($after -isnot [System.Collections.IDictionary]) { $after = $rrDouble }
        $writes = [System.Collections.Generic.List[object]]::new()
        foreach ($w in $after['Writes']) { if ($null -ne $w) { $writes.Add($w) } }
        Write-RrTrace $Clock 'output formatted'
        return [ordered]@{
            id         = $Request.Id
            stdout     = $stdout
            stderr     = [string]::Join("`n", $errorTexts)
            state      = $after['State']
            writes     = $writes.ToArray()
            replaced   = $prepared.Replaced
            durationMs = [math]::Round($Clock.Elapsed.TotalMilliseconds, 1)
        }
    }
    finally {
        $ps.Dispose()
        $runspace.Dispose()
    }
}

function Read-RrRequest([string]$Line) {
    $doc = [System.Text.Json.JsonDocument]::Parse($Line)
    try {
        $root = $doc.RootElement
        $request = @{ Id = $null; Ping = $false; LateAnswer = $false }
        $el = [System.Text.Json.JsonElement]::new()
        if ($root.TryGetProperty('id', [ref]$el)) {
            $request.Id = switch ($el.ValueKind) { 'Number' { $el.GetInt64() } 'String' { $el.GetString() } default { $null } }
        }
        if ($root.TryGetProperty('ping', [ref]$el) -and $el.ValueKind -eq 'True') { $request.Ping = $true; return $request }
        # The answer to an ask of a run that has ended (stopped while it waited): nobody reads it.
        if ($root.TryGetProperty('seq', [ref]$el)) { $request.LateAnswer = $true; return $request }
        $request.Script = $root.GetProperty('script').GetString()
        $request.DoublePath = $root.GetProperty('doublePath').GetString()
        $request.StateJson = $root.GetProperty('state').GetRawText()
        $request.StateSchema = $null
        $request.TimeoutMs = [long]0
        if ($root.TryGetProperty('timeoutMs', [ref]$el) -and $el.ValueKind -eq 'Number') { $request.TimeoutMs = $el.GetInt64() }
        if ($root.TryGetProperty('stateSchema', [ref]$el) -and $el.ValueKind -eq 'String') { $request.StateSchema = $el.GetString() }
        $parameters = [System.Collections.Generic.List[object]]::new()
        if ($root.TryGetProperty('parameters', [ref]$el)) {
            foreach ($p in $el.EnumerateArray()) {
                $parameters.Add(@{ Name = $p.GetProperty('name').GetString(); Value = [string]$p.GetProperty('value').GetString() })
            }
        }
        $request.Parameters = $parameters
        return $request
    }
    finally { $doc.Dispose() }
}

function Send-RrResponse($Response, [System.Diagnostics.Stopwatch]$Clock) {
    $json = ConvertTo-Json -InputObject $Response -Depth 30 -Compress
    $Protocol.WriteLine($json)
    if ($null -ne $Clock) { Write-RrTrace $Clock ('response sent, {0} characters' -f $json.Length) }
}

# ---------------------------------------------------------------------------------------------

Write-HostDiagnostic ('PowerShell {0}, pid {1}, work dir {2}' -f $PSVersionTable.PSVersion, $PID, $WorkDir)
try {
    Open-RrSpareRunspace
    while ($true) {
        $line = $Protocol.ReadLine()
        if ($null -eq $line) { break }
        if ($line.Trim() -eq '') { continue }
        $clock = [System.Diagnostics.Stopwatch]::StartNew()
        $id = $null
        try {
            $request = Read-RrRequest $line
            $id = $request.Id
            if ($request.LateAnswer) {
                Write-HostDiagnostic ('dropped an answer that came after its run: ' + $line.Substring(0, [Math]::Min(200, $line.Length)))
                continue
            }
            if ($request.Ping) {
                $response = [ordered]@{ id = $id; pong = $true; psVersion = $PSVersionTable.PSVersion.ToString(); pid = $PID }
            }
            else {
                $response = Invoke-RrRequest $request $clock
            }
        }
        catch {
            $exception = $_.Exception
            while ($exception -is [System.Management.Automation.MethodInvocationException] -and $null -ne $exception.InnerException) { $exception = $exception.InnerException }
            if ($exception -is [System.TimeoutException]) {
                $response = [ordered]@{ id = $id; hostError = $exception.Message; timedOut = $true }
            }
            else {
                $where = if ($null -ne $_.InvocationInfo -and $_.InvocationInfo.ScriptLineNumber -gt 0) { ' (host.ps1 line ' + $_.InvocationInfo.ScriptLineNumber + ')' } else { '' }
                $response = [ordered]@{ id = $id; hostError = $exception.Message + $where }
            }
        }
        try { Send-RrResponse $response $clock }
        catch {
            Write-HostDiagnostic ('could not serialise the response: ' + $_.Exception.Message)
            Send-RrResponse ([ordered]@{ id = $id; hostError = 'could not serialise the response: ' + $_.Exception.Message }) $null
        }
        Open-RrSpareRunspace
    }
}
finally {
    if ($null -ne $script:SpareRunspace) { $script:SpareRunspace.Dispose() }
    try { [System.IO.Directory]::Delete($WorkDir, $true) } catch { Write-HostDiagnostic ('could not remove ' + $WorkDir) }
}
