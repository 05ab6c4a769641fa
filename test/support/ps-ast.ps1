<#
.SYNOPSIS
    Describes PowerShell files as PowerShell's own parser sees them, as one JSON document.

.DESCRIPTION
    Test support for test/support/powershell-ast.ts. Parses each file with
    [System.Management.Automation.Language.Parser]::ParseFile and prints ONE JSON document:

        { "psVersion": "7.6.9", "files": [ { "path": ..., "errors": [...], ... }, ... ] }

    Per file: parse errors, tokens, #Requires, the script param() block, top-level
    statements, functions (with their parameters, types and attributes), command
    invocations, type names (literals, casts, constraints, New-Object), static and instance
    member calls, variables read and assigned, string constants, switch statements,
    hashtable literals, binary operators, attributes, named blocks, class definitions and a
    count of every AST node type. It judges nothing; the TypeScript side does.

    Written in Windows PowerShell 5.1 syntax, so that it can also run under powershell.exe.

.PARAMETER Path
    Files to parse.

.PARAMETER ListFile
    A text file naming more files to parse, one path a line (no command-line length limit).

.EXAMPLE
    pwsh -NoProfile -NonInteractive -File test/support/ps-ast.ps1 scripts/probe.ps1
#>
[CmdletBinding()]
param(
    [Parameter(Position = 0, ValueFromRemainingArguments = $true)]
    [string[]]$Path = @(),

    [string]$ListFile = ''
)

Set-StrictMode -Version 3.0
$ErrorActionPreference = 'Stop'

$maxText = 2000

function Limit-Text {
    param([string]$Text, [int]$Max = $maxText)
    if ($null -eq $Text -or $Text.Length -le $Max) {
        return $Text
    }
    return $Text.Substring(0, $Max)
}

function Get-FunctionName {
    # The name of the innermost function that holds an AST node, or $null at script level.
    param([System.Management.Automation.Language.Ast]$Ast)
    $parent = $Ast.Parent
    while ($null -ne $parent) {
        if ($parent -is [System.Management.Automation.Language.FunctionDefinitionAst]) {
            return $parent.Name
        }
        $parent = $parent.Parent
    }
    return $null
}

function Get-TypeNamePart {
    # Every simple type name inside a (generic, array) type name; generic ones as Name`N.
    param([System.Management.Automation.Language.ITypeName]$TypeName)
    if ($TypeName -is [System.Management.Automation.Language.GenericTypeName]) {
        $arguments = @($TypeName.GenericArguments)
        $parts = @($TypeName.TypeName.FullName + '`' + $arguments.Count)
        foreach ($argument in $arguments) {
            $parts += @(Get-TypeNamePart -TypeName $argument)
        }
        return $parts
    }
    if ($TypeName -is [System.Management.Automation.Language.ArrayTypeName]) {
        return @(Get-TypeNamePart -TypeName $TypeName.ElementType)
    }
    return @($TypeName.FullName)
}

function ConvertTo-TypeInfo {
    param(
        [System.Management.Automation.Language.ITypeName]$TypeName,
        [string]$How,
        [System.Management.Automation.Language.Ast]$Ast
    )
    return [ordered]@{
        name  = $TypeName.FullName
        parts = @(Get-TypeNamePart -TypeName $TypeName)
        how   = $How
        line  = $Ast.Extent.StartLineNumber
        fn    = Get-FunctionName -Ast $Ast
    }
}

function ConvertTo-ArgumentInfo {
    # An expression given as an argument: its AST type, its text, its value when constant.
    param([System.Management.Automation.Language.Ast]$Ast)
    $info = [ordered]@{
        ast  = $Ast.GetType().Name
        text = Limit-Text -Text $Ast.Extent.Text
    }
    if ($Ast -is [System.Management.Automation.Language.StringConstantExpressionAst]) {
        $info['value'] = $Ast.Value
        $info['stringKind'] = $Ast.StringConstantType.ToString()
    }
    elseif ($Ast -is [System.Management.Automation.Language.ConstantExpressionAst]) {
        $info['value'] = $Ast.Value
    }
    elseif ($Ast -is [System.Management.Automation.Language.VariableExpressionAst]) {
        $info['variable'] = $Ast.VariablePath.UserPath
        $info['splatted'] = [bool]$Ast.Splatted
    }
    return $info
}

function ConvertTo-AttributeInfo {
    param([System.Management.Automation.Language.AttributeAst]$Attribute)
    $named = @()
    foreach ($argument in @($Attribute.NamedArguments)) {
        $entry = [ordered]@{ name = $argument.ArgumentName; omitted = [bool]$argument.ExpressionOmitted }
        if (-not $argument.ExpressionOmitted) {
            $entry['argument'] = ConvertTo-ArgumentInfo -Ast $argument.Argument
        }
        $named += , $entry
    }
    $positional = @()
    foreach ($argument in @($Attribute.PositionalArguments)) {
        $positional += , (ConvertTo-ArgumentInfo -Ast $argument)
    }
    return [ordered]@{
        name  = $Attribute.TypeName.FullName
        args  = $positional
        named = $named
        line  = $Attribute.Extent.StartLineNumber
    }
}

function ConvertTo-ParameterInfo {
    param([System.Management.Automation.Language.ParameterAst]$Parameter)
    $type = $null
    $attributes = @()
    foreach ($attribute in @($Parameter.Attributes)) {
        if ($attribute -is [System.Management.Automation.Language.TypeConstraintAst]) {
            $type = $attribute.TypeName.FullName
        }
        else {
            $attributes += , (ConvertTo-AttributeInfo -Attribute $attribute)
        }
    }
    $default = $null
    if ($null -ne $Parameter.DefaultValue) {
        $default = ConvertTo-ArgumentInfo -Ast $Parameter.DefaultValue
    }
    return [ordered]@{
        name       = $Parameter.Name.VariablePath.UserPath
        type       = $type
        attributes = $attributes
        default    = $default
        line       = $Parameter.Extent.StartLineNumber
    }
}

function ConvertTo-ParamBlockInfo {
    param([System.Management.Automation.Language.ParamBlockAst]$ParamBlock)
    if ($null -eq $ParamBlock) {
        return $null
    }
    $attributes = @()
    foreach ($attribute in @($ParamBlock.Attributes)) {
        $attributes += , (ConvertTo-AttributeInfo -Attribute $attribute)
    }
    $parameters = @()
    foreach ($parameter in @($ParamBlock.Parameters)) {
        $parameters += , (ConvertTo-ParameterInfo -Parameter $parameter)
    }
    return [ordered]@{
        line       = $ParamBlock.Extent.StartLineNumber
        endLine    = $ParamBlock.Extent.EndLineNumber
        attributes = $attributes
        parameters = $parameters
    }
}

function Get-AssignmentKind {
    # How a variable expression is set: the assignment operator, 'foreach', 'parameter', or
    # $null when it is read.
    param([System.Management.Automation.Language.VariableExpressionAst]$Variable)
    $parent = $Variable.Parent
    if ($parent -is [System.Management.Automation.Language.ParameterAst]) {
        return 'parameter'
    }
    if ($parent -is [System.Management.Automation.Language.ForEachStatementAst] -and [object]::ReferenceEquals($parent.Variable, $Variable)) {
        return 'foreach'
    }
    # [int]$x = ..., $a, $b = ...
    $child = $Variable
    while ($parent -is [System.Management.Automation.Language.AttributedExpressionAst] -or $parent -is [System.Management.Automation.Language.ArrayLiteralAst]) {
        $child = $parent
        $parent = $parent.Parent
    }
    if ($parent -is [System.Management.Automation.Language.AssignmentStatementAst] -and [object]::ReferenceEquals($parent.Left, $child)) {
        return $parent.Operator.ToString()
    }
    return $null
}

function Get-StringRole {
    param([System.Management.Automation.Language.Ast]$Ast)
    $parent = $Ast.Parent
    if ($parent -is [System.Management.Automation.Language.CommandAst]) {
        if ([object]::ReferenceEquals($parent.CommandElements[0], $Ast)) {
            return 'command'
        }
        return 'argument'
    }
    if ($parent -is [System.Management.Automation.Language.MemberExpressionAst] -and [object]::ReferenceEquals($parent.Member, $Ast)) {
        return 'member'
    }
    if ($parent -is [System.Management.Automation.Language.HashtableAst]) {
        return 'key'
    }
    return 'value'
}

function Get-NewObjectTypeName {
    # The type a New-Object call names, when it is a constant: -TypeName or the first positional.
    param([System.Management.Automation.Language.CommandAst]$Command)
    $elements = @($Command.CommandElements)
    $candidate = $null
    for ($index = 1; $index -lt $elements.Count; $index++) {
        $element = $elements[$index]
        if ($element -is [System.Management.Automation.Language.CommandParameterAst]) {
            if ('TypeName'.StartsWith($element.ParameterName, [System.StringComparison]::OrdinalIgnoreCase)) {
                if ($null -ne $element.Argument) {
                    $candidate = $element.Argument
                }
                elseif ($index + 1 -lt $elements.Count) {
                    $candidate = $elements[$index + 1]
                }
                break
            }
            if ($null -eq $element.Argument) {
                # Every other New-Object parameter but -Strict takes a value.
                if ($element.ParameterName -ne 'Strict') {
                    $index++
                }
            }
            continue
        }
        if ($null -eq $candidate) {
            $candidate = $element
        }
    }
    if ($candidate -isnot [System.Management.Automation.Language.StringConstantExpressionAst]) {
        return $null
    }
    # The parser reads the text as it reads [text], generic arguments and all.
    $tokens = $null
    $errors = $null
    $parsed = [System.Management.Automation.Language.Parser]::ParseInput('[' + $candidate.Value + ']', [ref]$tokens, [ref]$errors)
    $typeExpression = $parsed.Find({ param($node) $node -is [System.Management.Automation.Language.TypeExpressionAst] }, $true)
    if ($null -eq $typeExpression -or @($errors).Count -gt 0) {
        return $candidate.Value
    }
    return $typeExpression.TypeName
}

function Get-StatementValue {
    # The expression a statement is, when it is one ('x' in @{ k = 'x' }), else $null.
    param([System.Management.Automation.Language.StatementAst]$Statement)
    if ($Statement -is [System.Management.Automation.Language.PipelineAst] -and @($Statement.PipelineElements).Count -eq 1 -and
        $Statement.PipelineElements[0] -is [System.Management.Automation.Language.CommandExpressionAst]) {
        return $Statement.PipelineElements[0].Expression
    }
    return $null
}

function ConvertTo-HashtableInfo {
    # A hashtable literal: its keys and values, the variable it is assigned to, and the
    # hashtable and key it is the value of. FindAll yields parents first, so a parent is
    # always numbered before its children.
    param(
        [System.Management.Automation.Language.HashtableAst]$Hashtable,
        [hashtable]$Index
    )
    $number = $Index.Count
    $Index[$Hashtable] = $number
    $entries = @()
    foreach ($pair in $Hashtable.KeyValuePairs) {
        $entry = [ordered]@{ key = $pair.Item1.Extent.Text; text = Limit-Text -Text $pair.Item2.Extent.Text -Max 200 }
        if ($pair.Item1 -is [System.Management.Automation.Language.StringConstantExpressionAst]) {
            $entry['key'] = $pair.Item1.Value
        }
        $value = Get-StatementValue -Statement $pair.Item2
        if ($null -ne $value) {
            $entry['value'] = ConvertTo-ArgumentInfo -Ast $value
        }
        $entries += , $entry
    }
    $parentIndex = $null
    $parentKey = $null
    $assignedTo = $null
    $child = $Hashtable
    $parent = $Hashtable.Parent
    while ($null -ne $parent) {
        if ($parent -is [System.Management.Automation.Language.HashtableAst]) {
            $parentIndex = $Index[$parent]
            foreach ($pair in $parent.KeyValuePairs) {
                if ([object]::ReferenceEquals($pair.Item2, $child)) {
                    $parentKey = $pair.Item1.Extent.Text
                    if ($pair.Item1 -is [System.Management.Automation.Language.StringConstantExpressionAst]) {
                        $parentKey = $pair.Item1.Value
                    }
                }
            }
            break
        }
        if ($parent -is [System.Management.Automation.Language.AssignmentStatementAst]) {
            if (-not [object]::ReferenceEquals($parent.Left, $child)) {
                $assignedTo = $parent.Left.Extent.Text
            }
            break
        }
        if (-not ($parent -is [System.Management.Automation.Language.CommandExpressionAst] -or $parent -is [System.Management.Automation.Language.PipelineAst] -or
                $parent -is [System.Management.Automation.Language.ConvertExpressionAst] -or $parent -is [System.Management.Automation.Language.ParenExpressionAst])) {
            break
        }
        $child = $parent
        $parent = $parent.Parent
    }
    return [ordered]@{
        index      = $number
        parent     = $parentIndex
        parentKey  = $parentKey
        assignedTo = $assignedTo
        entries    = $entries
        line       = $Hashtable.Extent.StartLineNumber
        fn         = Get-FunctionName -Ast $Hashtable
    }
}

function ConvertTo-FileInfo {
    param([string]$FilePath)
    $tokens = $null
    $parseErrors = $null
    $ast = [System.Management.Automation.Language.Parser]::ParseFile($FilePath, [ref]$tokens, [ref]$parseErrors)

    $errors = @()
    foreach ($parseError in @($parseErrors)) {
        $errors += , [ordered]@{
            id         = $parseError.ErrorId
            message    = $parseError.Message
            line       = $parseError.Extent.StartLineNumber
            column     = $parseError.Extent.StartColumnNumber
            text       = Limit-Text -Text $parseError.Extent.Text -Max 200
            incomplete = [bool]$parseError.IncompleteInput
        }
    }

    # [kind, text, line, nested]: nested tokens are the code inside "...$(...)..." strings.
    $tokenList = New-Object System.Collections.Generic.List[object]
    $pending = New-Object System.Collections.Generic.Queue[object]
    foreach ($token in @($tokens)) {
        $pending.Enqueue(@($token, 0))
        while ($pending.Count -gt 0) {
            $item = $pending.Dequeue()
            $current = $item[0]
            $kind = $current.Kind.ToString()
            if ($kind -ne 'NewLine' -and $kind -ne 'EndOfInput') {
                $tokenList.Add(@($kind, $current.Text, $current.Extent.StartLineNumber, $item[1]))
            }
            if ($current -is [System.Management.Automation.Language.StringExpandableToken] -and $null -ne $current.NestedTokens) {
                foreach ($nested in $current.NestedTokens) {
                    $pending.Enqueue(@($nested, 1))
                }
            }
        }
    }

    $statements = @()
    if ($null -ne $ast.EndBlock) {
        foreach ($statement in @($ast.EndBlock.Statements)) {
            $entry = [ordered]@{
                ast     = $statement.GetType().Name
                text    = Limit-Text -Text $statement.Extent.Text -Max 200
                line    = $statement.Extent.StartLineNumber
                endLine = $statement.Extent.EndLineNumber
            }
            if ($statement -is [System.Management.Automation.Language.AssignmentStatementAst]) {
                $entry['left'] = $statement.Left.Extent.Text
                $entry['operator'] = $statement.Operator.ToString()
                $entry['right'] = Limit-Text -Text $statement.Right.Extent.Text -Max 200
            }
            elseif ($statement -is [System.Management.Automation.Language.PipelineAst] -and @($statement.PipelineElements).Count -eq 1 -and $statement.PipelineElements[0] -is [System.Management.Automation.Language.CommandAst]) {
                $entry['command'] = $statement.PipelineElements[0].GetCommandName()
            }
            $statements += , $entry
        }
    }

    $requires = $null
    if ($null -ne $ast.ScriptRequirements) {
        $requiredVersion = $null
        if ($null -ne $ast.ScriptRequirements.RequiredPSVersion) {
            $requiredVersion = $ast.ScriptRequirements.RequiredPSVersion.ToString()
        }
        $requires = [ordered]@{
            psVersion = $requiredVersion
            psEditions = @($ast.ScriptRequirements.RequiredPSEditions)
            modules   = @($ast.ScriptRequirements.RequiredModules | ForEach-Object { $_.Name })
        }
    }

    $astTypes = [ordered]@{}
    $functions = New-Object System.Collections.Generic.List[object]
    $commands = New-Object System.Collections.Generic.List[object]
    $types = New-Object System.Collections.Generic.List[object]
    $staticMembers = New-Object System.Collections.Generic.List[object]
    $memberCalls = New-Object System.Collections.Generic.List[object]
    $variables = New-Object System.Collections.Generic.List[object]
    $strings = New-Object System.Collections.Generic.List[object]
    $switches = New-Object System.Collections.Generic.List[object]
    $attributes = New-Object System.Collections.Generic.List[object]
    $namedBlocks = New-Object System.Collections.Generic.List[object]
    $typeDefinitions = New-Object System.Collections.Generic.List[object]
    $hashtables = New-Object System.Collections.Generic.List[object]
    $hashtableIndex = @{}
    $operators = New-Object System.Collections.Generic.List[object]

    foreach ($node in $ast.FindAll({ $true }, $true)) {
        $typeName = $node.GetType().Name
        if ($astTypes.Contains($typeName)) {
            $astTypes[$typeName]['count']++
        }
        else {
            $astTypes[$typeName] = [ordered]@{ count = 1; line = $node.Extent.StartLineNumber }
        }

        if ($node -is [System.Management.Automation.Language.FunctionDefinitionAst]) {
            $parameters = @()
            $functionAttributes = @()
            if ($null -ne $node.Body.ParamBlock) {
                $block = ConvertTo-ParamBlockInfo -ParamBlock $node.Body.ParamBlock
                $parameters = $block['parameters']
                $functionAttributes = $block['attributes']
            }
            elseif ($null -ne $node.Parameters) {
                foreach ($parameter in $node.Parameters) {
                    $parameters += , (ConvertTo-ParameterInfo -Parameter $parameter)
                }
            }
            $functions.Add([ordered]@{
                name       = $node.Name
                line       = $node.Extent.StartLineNumber
                endLine    = $node.Extent.EndLineNumber
                isFilter   = [bool]$node.IsFilter
                isWorkflow = [bool]$node.IsWorkflow
                parent     = Get-FunctionName -Ast $node
                attributes = $functionAttributes
                parameters = $parameters
            })
        }
        elseif ($node -is [System.Management.Automation.Language.CommandAst]) {
            $elements = @()
            $all = @($node.CommandElements)
            for ($index = 1; $index -lt $all.Count; $index++) {
                $element = $all[$index]
                if ($element -is [System.Management.Automation.Language.CommandParameterAst]) {
                    $entry = [ordered]@{ parameter = $element.ParameterName; text = $element.Extent.Text }
                    if ($null -ne $element.Argument) {
                        $entry['argument'] = ConvertTo-ArgumentInfo -Ast $element.Argument
                    }
                    $elements += , $entry
                }
                else {
                    $elements += , (ConvertTo-ArgumentInfo -Ast $element)
                }
            }
            $background = $false
            if ($node.Parent -is [System.Management.Automation.Language.PipelineAst] -and $null -ne $node.Parent.PSObject.Properties['Background']) {
                $background = [bool]$node.Parent.Background
            }
            $redirections = @()
            foreach ($redirection in @($node.Redirections)) {
                $redirections += $redirection.Extent.Text
            }
            $commands.Add([ordered]@{
                name         = $node.GetCommandName()
                operator     = $node.InvocationOperator.ToString()
                head         = ConvertTo-ArgumentInfo -Ast $all[0]
                elements     = $elements
                redirections = $redirections
                background   = $background
                text         = Limit-Text -Text $node.Extent.Text
                line         = $node.Extent.StartLineNumber
                fn           = Get-FunctionName -Ast $node
            })
            if ($node.GetCommandName() -eq 'New-Object') {
                $created = Get-NewObjectTypeName -Command $node
                if ($created -is [System.Management.Automation.Language.ITypeName]) {
                    $types.Add((ConvertTo-TypeInfo -TypeName $created -How 'new-object' -Ast $node))
                }
                elseif ($null -ne $created) {
                    $types.Add([ordered]@{ name = $created; parts = @($created); how = 'new-object'; line = $node.Extent.StartLineNumber; fn = Get-FunctionName -Ast $node })
                }
            }
        }
        elseif ($node -is [System.Management.Automation.Language.TypeExpressionAst]) {
            $types.Add((ConvertTo-TypeInfo -TypeName $node.TypeName -How 'literal' -Ast $node))
        }
        elseif ($node -is [System.Management.Automation.Language.TypeConstraintAst]) {
            $how = 'cast'
            if ($node.Parent -is [System.Management.Automation.Language.ParameterAst]) {
                $how = 'parameter'
            }
            $types.Add((ConvertTo-TypeInfo -TypeName $node.TypeName -How $how -Ast $node))
        }
        elseif ($node -is [System.Management.Automation.Language.AttributeAst]) {
            $entry = ConvertTo-AttributeInfo -Attribute $node
            $entry['fn'] = Get-FunctionName -Ast $node
            $attributes.Add($entry)
        }
        elseif ($node -is [System.Management.Automation.Language.MemberExpressionAst]) {
            $member = $node.Member.Extent.Text
            if ($node.Member -is [System.Management.Automation.Language.StringConstantExpressionAst]) {
                $member = $node.Member.Value
            }
            $arguments = @()
            $invoked = $node -is [System.Management.Automation.Language.InvokeMemberExpressionAst]
            if ($invoked -and $null -ne $node.Arguments) {
                foreach ($argument in $node.Arguments) {
                    $arguments += , (ConvertTo-ArgumentInfo -Ast $argument)
                }
            }
            $nullConditional = $false
            if ($null -ne $node.PSObject.Properties['NullConditional']) {
                $nullConditional = [bool]$node.NullConditional
            }
            if ($node.Static) {
                $target = $node.Expression.Extent.Text
                $parts = @()
                if ($node.Expression -is [System.Management.Automation.Language.TypeExpressionAst]) {
                    $target = $node.Expression.TypeName.FullName
                    $parts = @(Get-TypeNamePart -TypeName $node.Expression.TypeName)
                }
                $staticMembers.Add([ordered]@{
                    type    = $target
                    parts   = $parts
                    member  = $member
                    invoked = $invoked
                    args    = $arguments
                    line    = $node.Extent.StartLineNumber
                    fn      = Get-FunctionName -Ast $node
                })
            }
            elseif ($invoked) {
                $memberCalls.Add([ordered]@{
                    target          = Limit-Text -Text $node.Expression.Extent.Text -Max 200
                    member          = $member
                    args            = $arguments
                    nullConditional = $nullConditional
                    line            = $node.Extent.StartLineNumber
                    fn              = Get-FunctionName -Ast $node
                })
            }
        }
        elseif ($node -is [System.Management.Automation.Language.VariableExpressionAst]) {
            $variables.Add([ordered]@{
                name     = $node.VariablePath.UserPath
                assigned = Get-AssignmentKind -Variable $node
                splatted = [bool]$node.Splatted
                line     = $node.Extent.StartLineNumber
                fn       = Get-FunctionName -Ast $node
            })
        }
        elseif ($node -is [System.Management.Automation.Language.StringConstantExpressionAst]) {
            $strings.Add([ordered]@{
                value      = $node.Value
                kind       = $node.StringConstantType.ToString()
                expandable = $false
                role       = Get-StringRole -Ast $node
                line       = $node.Extent.StartLineNumber
            })
        }
        elseif ($node -is [System.Management.Automation.Language.ExpandableStringExpressionAst]) {
            $strings.Add([ordered]@{
                value      = $node.Value
                kind       = $node.StringConstantType.ToString()
                expandable = $true
                role       = Get-StringRole -Ast $node
                line       = $node.Extent.StartLineNumber
            })
        }
        elseif ($node -is [System.Management.Automation.Language.SwitchStatementAst]) {
            $clauses = @()
            foreach ($clause in @($node.Clauses)) {
                $clauses += , (ConvertTo-ArgumentInfo -Ast $clause.Item1)
            }
            $switches.Add([ordered]@{
                flags     = $node.Flags.ToString()
                condition = Limit-Text -Text $node.Condition.Extent.Text -Max 200
                clauses   = $clauses
                hasDefault = $null -ne $node.Default
                line      = $node.Extent.StartLineNumber
                fn        = Get-FunctionName -Ast $node
            })
        }
        elseif ($node -is [System.Management.Automation.Language.NamedBlockAst]) {
            if (-not $node.Unnamed) {
                $namedBlocks.Add([ordered]@{ kind = $node.BlockKind.ToString(); line = $node.Extent.StartLineNumber; fn = Get-FunctionName -Ast $node })
            }
        }
        elseif ($node -is [System.Management.Automation.Language.BinaryExpressionAst]) {
            # [operator, left AST type, right AST type, right element AST types (for a, b), line]
            $rightElements = @()
            if ($node.Right -is [System.Management.Automation.Language.ArrayLiteralAst]) {
                foreach ($element in $node.Right.Elements) {
                    $rightElements += $element.GetType().Name
                }
            }
            $operators.Add(@($node.Operator.ToString(), $node.Left.GetType().Name, $node.Right.GetType().Name, $rightElements, $node.Extent.StartLineNumber))
        }
        elseif ($node -is [System.Management.Automation.Language.HashtableAst]) {
            $hashtables.Add((ConvertTo-HashtableInfo -Hashtable $node -Index $hashtableIndex))
        }
        elseif ($node -is [System.Management.Automation.Language.TypeDefinitionAst]) {
            $typeDefinitions.Add([ordered]@{ name = $node.Name; isEnum = [bool]$node.IsEnum; line = $node.Extent.StartLineNumber })
        }
    }

    $usings = @()
    foreach ($using in @($ast.UsingStatements)) {
        $usings += Limit-Text -Text $using.Extent.Text -Max 200
    }

    return [ordered]@{
        path            = $FilePath
        errors          = $errors
        requires        = $requires
        usings          = $usings
        paramBlock      = ConvertTo-ParamBlockInfo -ParamBlock $ast.ParamBlock
        statements      = $statements
        functions       = $functions
        commands        = $commands
        types           = $types
        staticMembers   = $staticMembers
        memberCalls     = $memberCalls
        variables       = $variables
        strings         = $strings
        switches        = $switches
        attributes      = $attributes
        namedBlocks     = $namedBlocks
        typeDefinitions = $typeDefinitions
        hashtables      = $hashtables
        operators       = $operators
        astTypes        = $astTypes
        tokens          = $tokenList.ToArray()
    }
}

$files = New-Object System.Collections.Generic.List[string]
foreach ($item in $Path) {
    if (-not [string]::IsNullOrEmpty($item)) {
        $files.Add($item)
    }
}
if ($ListFile -ne '') {
    foreach ($line in [System.IO.File]::ReadAllLines($ListFile)) {
        if ($line.Trim() -ne '') {
            $files.Add($line.Trim())
        }
    }
}

$results = @()
foreach ($file in $files) {
    if (-not (Test-Path -LiteralPath $file -PathType Leaf)) {
        throw "ps-ast: no such file: $file"
    }
    $results += , (ConvertTo-FileInfo -FilePath $file)
}

$document = [ordered]@{
    psVersion = $PSVersionTable.PSVersion.ToString()
    psEdition = [string]$PSVersionTable.PSEdition
    files     = $results
}
[Console]::Out.Write((ConvertTo-Json -InputObject $document -Depth 12 -Compress))
