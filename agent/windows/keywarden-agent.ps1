#Requires -Version 5.1
#Requires -RunAsAdministrator
<#
.SYNOPSIS
    keywarden agent for Windows: escrows BitLocker recovery passwords and
    reports logons to a keywarden server (SPEC section 11).

.DESCRIPTION
    keywarden-agent.ps1 -Install -Server https://keys.example.com -EnrollmentToken TOKEN
        Copies this script to %ProgramFiles%\keywarden, registers the device
        (its ID and secret go to HKLM\SOFTWARE\keywarden, readable by SYSTEM
        only), adds the scheduled task "keywarden agent" (SYSTEM, at logon
        and every 90 minutes) and checks in once.
    keywarden-agent.ps1
        Checks in once (what the scheduled task runs).
    keywarden-agent.ps1 -Uninstall
        Removes the scheduled task, the registry key and the copied script.
        BitLocker protectors are left as they are.

    Runs as SYSTEM only (it refuses otherwise). Written for Windows
    PowerShell 5.1. It was not run where it was
    written (no Windows there): it is parse-checked only, see README.md.
#>
[CmdletBinding(DefaultParameterSetName = 'CheckIn')]
param(
    [Parameter(ParameterSetName = 'Install', Mandatory = $true)]
    [switch] $Install,

    [Parameter(ParameterSetName = 'Uninstall', Mandatory = $true)]
    [switch] $Uninstall,

    [Parameter(ParameterSetName = 'Install')]
    [string] $Server,

    [Parameter(ParameterSetName = 'Install')]
    [string] $EnrollmentToken
)

Set-StrictMode -Version 2.0
# Every failing cmdlet throws: nothing after a failed step runs.
$ErrorActionPreference = 'Stop'

$KeyPath = 'HKLM:\SOFTWARE\keywarden'
$TaskName = 'keywarden agent'
$InstallDir = Join-Path $env:ProgramFiles 'keywarden'
$SystemSid = 'S-1-5-18'
# A first check-in reports logons of the last week.
$FirstLogonDays = 7
# SPEC section 5: at most 256 logons a check-in.
$MaxLogons = 256

# Win32_EncryptableVolume's VolumeType (0 operating system, 1 fixed data,
# 2 portable data) -> the check-in's volume type. Get-BitLockerVolume's own
# VolumeType does not tell fixed from removable drives.
$VolumeTypes = @{
    '0' = 'os'
    '1' = 'fixed'
    '2' = 'removable'
}

# Event 4624's LogonType -> the check-in's logon type: interactive (2),
# unlock (7) and cached interactive (11) are local, RemoteInteractive (10)
# is remote; network, service and batch logons are not people at the
# machine and are left out.
$LogonTypes = @{
    '2'  = 'local'
    '7'  = 'local'
    '11' = 'local'
    '10' = 'remote'
}

function Get-KwState {
    if (-not (Test-Path $KeyPath)) {
        throw "not registered: run keywarden-agent.ps1 -Install -Server URL -EnrollmentToken TOKEN"
    }
    Get-ItemProperty -Path $KeyPath
}

# Creates HKLM\SOFTWARE\keywarden readable by SYSTEM alone (no inherited
# rules, owner SYSTEM) before any secret is written into it.
function New-KwStateKey {
    if (-not (Test-Path $KeyPath)) {
        $null = New-Item -Path $KeyPath -Force
    }
    $sid = New-Object System.Security.Principal.SecurityIdentifier($SystemSid)
    $acl = New-Object System.Security.AccessControl.RegistrySecurity
    $acl.SetAccessRuleProtection($true, $false)
    $acl.SetOwner($sid)
    $rule = New-Object System.Security.AccessControl.RegistryAccessRule(
        $sid, 'FullControl', 'ContainerInherit', 'None', 'Allow')
    $acl.AddAccessRule($rule)
    Set-Acl -Path $KeyPath -AclObject $acl
}

function Get-KwOsName {
    $caption = (Get-CimInstance -ClassName Win32_OperatingSystem).Caption
    $caption = $caption -replace '^Microsoft ', ''
    $cv = Get-ItemProperty -Path 'HKLM:\SOFTWARE\Microsoft\Windows NT\CurrentVersion'
    if ($cv.PSObject.Properties['DisplayVersion']) {
        return "$caption $($cv.DisplayVersion)"
    }
    return $caption
}

# POST a JSON body; returns the parsed answer. Anything but a 2xx throws
# (Invoke-WebRequest throws on 4xx/5xx; the check below covers the rest).
function Invoke-KwPost {
    param([string] $Uri, [string] $Json, [hashtable] $Headers)
    [Net.ServicePointManager]::SecurityProtocol = [Net.SecurityProtocolType]::Tls12
    $bytes = [Text.Encoding]::UTF8.GetBytes($Json)
    $r = Invoke-WebRequest -Uri $Uri -Method Post -Headers $Headers -Body $bytes `
        -ContentType 'application/json; charset=utf-8' -UseBasicParsing -TimeoutSec 60
    if ($r.StatusCode -lt 200 -or $r.StatusCode -gt 299) {
        throw "$Uri answered $($r.StatusCode)"
    }
    $r.Content | ConvertFrom-Json
}

function Register-KwDevice {
    param([string] $Server, [string] $Token)
    $body = [ordered]@{
        enrollment_token = $Token
        name             = $env:COMPUTERNAME
        domain           = $env:USERDOMAIN
        os               = Get-KwOsName
    }
    $json = ConvertTo-Json -InputObject $body -Compress
    $answer = Invoke-KwPost -Uri "$($Server.TrimEnd('/'))/api/v1/register" -Json $json -Headers @{}
    New-KwStateKey
    Set-ItemProperty -Path $KeyPath -Name Server -Value $Server.TrimEnd('/')
    Set-ItemProperty -Path $KeyPath -Name DeviceId -Value $answer.device_id
    Set-ItemProperty -Path $KeyPath -Name DeviceSecret -Value $answer.device_secret
}

# The one place the check-in's JSON is made (SPEC section 5; the shared
# fixture tests/fixtures/agent-checkin.json has the same fields and nesting,
# which the test suite checks on this function's syntax tree).
function New-KwCheckinBody {
    param([string] $Os, [object[]] $Volumes, [object[]] $Logons)
    $body = [ordered]@{
        os      = $Os
        volumes = @(foreach ($v in $Volumes) {
                [ordered]@{
                    id                = $v.Id
                    mount             = $v.Mount
                    type              = $v.Type
                    protection        = $v.Protection
                    encryption        = $v.Encryption
                    percent_encrypted = [int]$v.Percent
                    recovery_keys     = @(foreach ($k in $v.Keys) {
                            [ordered]@{
                                key_id            = $k.KeyId
                                recovery_password = $k.RecoveryPassword
                            }
                        })
                }
            })
        logons  = @(foreach ($l in $Logons) {
                [ordered]@{
                    user = $l.User
                    type = $l.Type
                    at   = $l.At
                }
            })
    }
    ConvertTo-Json -InputObject $body -Depth 6 -Compress
}

# POST /api/v1/checkin; returns the answer ({rotate, checkin_interval}).
# Throws unless the server answered 2xx: callers rely on that.
function Send-KwCheckin {
    param($State, [string] $Json)
    Invoke-KwPost -Uri "$($State.Server)/api/v1/checkin" -Json $Json `
        -Headers @{ Authorization = "Bearer $($State.DeviceSecret)" }
}

# A protector ID as Windows shows it ({GUID}) -> keywarden's canonical form.
function ConvertTo-KwKeyId {
    param([string] $Id)
    ($Id -replace '[{}\s]', '').ToUpperInvariant()
}

function ConvertTo-KwProtection {
    param($Volume)
    if ("$($Volume.ProtectionStatus)" -eq 'On') {
        return 'on'
    }
    # Suspend-BitLocker leaves the volume encrypted with protection off.
    if ("$($Volume.VolumeStatus)" -eq 'FullyEncrypted') {
        return 'suspended'
    }
    return 'off'
}

# EncryptionMethod (XtsAes256, Aes128Diffuser, None...) -> xts_aes_256,
# aes_128_diffuser, none.
function ConvertTo-KwEncryption {
    param($Method)
    if (-not "$Method") {
        return 'none'
    }
    $s = "$Method" -creplace '([a-z])([A-Z0-9])', '$1_$2'
    $s = $s -creplace '([0-9])([A-Z])', '$1_$2'
    $s.ToLowerInvariant()
}

# The Win32_EncryptableVolume of a Get-BitLockerVolume mount point (a drive
# letter, or \\?\Volume{GUID}\ for a volume without one).
function Find-KwEncryptableVolume {
    param($EncryptableVolumes, [string] $MountPoint)
    $EncryptableVolumes | Where-Object {
        $_.DriveLetter -eq $MountPoint -or $_.DeviceID -eq $MountPoint
    } | Select-Object -First 1
}

# The BitLocker volume GUID (PersistentVolumeID), or for a volume never
# encrypted the volume's own GUID.
function Get-KwVolumeId {
    param($EncryptableVolume)
    foreach ($s in @($EncryptableVolume.PersistentVolumeID, $EncryptableVolume.DeviceID)) {
        if ("$s" -match '[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}') {
            return $Matches[0].ToUpperInvariant()
        }
    }
    return $null
}

# This machine's volumes as the check-in reports them.
function Get-KwVolumes {
    $evs = @(Get-CimInstance -Namespace 'root/cimv2/Security/MicrosoftVolumeEncryption' `
            -ClassName Win32_EncryptableVolume)
    foreach ($v in @(Get-BitLockerVolume)) {
        $ev = Find-KwEncryptableVolume -EncryptableVolumes $evs -MountPoint $v.MountPoint
        if (-not $ev) {
            continue
        }
        $id = Get-KwVolumeId -EncryptableVolume $ev
        $type = $VolumeTypes["$($ev.VolumeType)"]
        if (-not $id -or -not $type) {
            continue
        }
        $keys = @(foreach ($p in @($v.KeyProtector)) {
                if ("$($p.KeyProtectorType)" -eq 'RecoveryPassword') {
                    [pscustomobject]@{
                        KeyId            = ConvertTo-KwKeyId $p.KeyProtectorId
                        RecoveryPassword = $p.RecoveryPassword
                    }
                }
            })
        [pscustomobject]@{
            Id         = $id
            Mount      = $v.MountPoint
            Type       = $type
            Protection = ConvertTo-KwProtection $v
            Encryption = ConvertTo-KwEncryption $v.EncryptionMethod
            Percent    = [int][math]::Floor($v.EncryptionPercentage)
            Keys       = $keys
        }
    }
}

function Get-KwEventField {
    param($Xml, [string] $Name)
    foreach ($d in $Xml.Event.EventData.Data) {
        if ($d.Name -eq $Name) {
            return "$($d.'#text')"
        }
    }
    return ''
}

# A UTC time as the check-in (and the event log's XPath) writes it,
# whatever the machine's culture.
function Format-KwTime {
    param([datetime] $Time)
    $Time.ToUniversalTime().ToString("yyyy'-'MM'-'dd'T'HH':'mm':'ss'Z'",
        [Globalization.CultureInfo]::InvariantCulture)
}

# Local and remote logons (Security log, event 4624) since $Since, newest
# first, one per user and type (the latest), at most $MaxLogons. The query
# asks for the logon types of $LogonTypes only: a server's log holds many
# network logons.
function Get-KwLogons {
    param([datetime] $Since)
    $types = @(foreach ($t in $LogonTypes.Keys) { "Data[@Name='LogonType']='$t'" }) -join ' or '
    $xpath = "*[System[EventID=4624 and TimeCreated[@SystemTime>='$(Format-KwTime $Since)']]]" +
        " and *[EventData[$types]]"
    $events = @()
    try {
        $events = @(Get-WinEvent -LogName 'Security' -FilterXPath $xpath)
    } catch [Exception] {
        # "No events were found" is an error to Get-WinEvent.
        if ($_.FullyQualifiedErrorId -notlike 'NoMatchingEventsFound*') {
            throw
        }
    }
    $seen = @{}
    $out = @()
    foreach ($e in $events) {
        $xml = [xml]$e.ToXml()
        $type = $LogonTypes[(Get-KwEventField -Xml $xml -Name 'LogonType')]
        $user = Get-KwEventField -Xml $xml -Name 'TargetUserName'
        $domain = Get-KwEventField -Xml $xml -Name 'TargetDomainName'
        # machine accounts and Windows' own sessions (DWM, UMFD) are not people
        if (-not $type -or $user.EndsWith('$') -or $domain -in @('Window Manager', 'Font Driver Host', 'NT AUTHORITY')) {
            continue
        }
        $name = "$domain\$user"
        if ($seen.ContainsKey("$name|$type")) {
            continue
        }
        $seen["$name|$type"] = $true
        $out += [pscustomobject]@{
            User = $name
            Type = $type
            At   = Format-KwTime $e.TimeCreated
        }
        if ($out.Count -ge $MaxLogons) {
            break
        }
    }
    $out
}

# The recovery-password protector with this key ID, its volume, and how
# many other recovery passwords that volume holds that are not in $Rotate.
function Find-KwProtector {
    param([string] $KeyId, [string[]] $Rotate)
    foreach ($v in @(Get-BitLockerVolume)) {
        foreach ($p in @($v.KeyProtector)) {
            if ("$($p.KeyProtectorType)" -eq 'RecoveryPassword' -and
                (ConvertTo-KwKeyId $p.KeyProtectorId) -eq $KeyId) {
                return [pscustomobject]@{
                    Mount          = $v.MountPoint
                    KeyProtectorId = $p.KeyProtectorId
                    Others         = @($v.KeyProtector | Where-Object {
                            "$($_.KeyProtectorType)" -eq 'RecoveryPassword' -and
                            (ConvertTo-KwKeyId $_.KeyProtectorId) -notin $Rotate
                        }).Count
                }
            }
        }
    }
    return $null
}

# Rotation after a disclosure: each disclosed key gets a new recovery
# password on its volume, the new set is checked in, and only once the
# server has acknowledged it (Send-KwCheckin returned: a 2xx) are the
# disclosed protectors removed. A failure anywhere before leaves the old
# protector in place; the next run finds the key in `rotate` again and, as
# the volume then holds another recovery password too, adds none.
function Invoke-KwRotation {
    param($State, [string[]] $Rotate, [string] $Os)
    $old = @()
    $ids = @(foreach ($kid in $Rotate) { ConvertTo-KwKeyId $kid })
    foreach ($kid in $ids) {
        $p = Find-KwProtector -KeyId $kid -Rotate $ids
        if (-not $p) {
            continue
        }
        if ($p.Others -eq 0) {
            # -WarningAction: its warning would print the new password.
            $null = Add-BitLockerKeyProtector -MountPoint $p.Mount -RecoveryPasswordProtector `
                -WarningAction SilentlyContinue
        }
        $old += $p
    }
    if ($old.Count -eq 0) {
        return
    }
    $json = New-KwCheckinBody -Os $Os -Volumes @(Get-KwVolumes) -Logons @()
    $null = Send-KwCheckin -State $State -Json $json
    foreach ($p in $old) {
        $null = Remove-BitLockerKeyProtector -MountPoint $p.Mount -KeyProtectorId $p.KeyProtectorId
    }
}

function Invoke-KwCheckin {
    $state = Get-KwState
    $now = (Get-Date).ToUniversalTime()
    $since = $now.AddDays(-$FirstLogonDays)
    if ($state.PSObject.Properties['LastCheckin']) {
        $since = [datetime]::Parse($state.LastCheckin, [Globalization.CultureInfo]::InvariantCulture,
            [Globalization.DateTimeStyles]::AdjustToUniversal)
    }
    $os = Get-KwOsName
    $json = New-KwCheckinBody -Os $os -Volumes @(Get-KwVolumes) -Logons @(Get-KwLogons -Since $since)
    $answer = Send-KwCheckin -State $state -Json $json
    Set-ItemProperty -Path $KeyPath -Name LastCheckin -Value $now.ToString('o')
    $rotate = @()
    if ($answer.PSObject.Properties['rotate']) {
        $rotate = @($answer.rotate)
    }
    if ($rotate.Count -gt 0) {
        Invoke-KwRotation -State $state -Rotate $rotate -Os $os
    }
}

function Install-KwAgent {
    param([string] $Server, [string] $Token)
    $null = New-Item -ItemType Directory -Path $InstallDir -Force
    $target = Join-Path $InstallDir 'keywarden-agent.ps1'
    if ($PSCommandPath -ne $target) {
        Copy-Item -Path $PSCommandPath -Destination $target -Force
    }
    if (-not (Test-Path $KeyPath) -or -not (Get-ItemProperty -Path $KeyPath).PSObject.Properties['DeviceSecret']) {
        if (-not $Server -or -not $Token) {
            throw 'not registered yet: -Install needs -Server and -EnrollmentToken'
        }
        Register-KwDevice -Server $Server -Token $Token
    }
    $action = New-ScheduledTaskAction -Execute 'powershell.exe' `
        -Argument "-NoProfile -NonInteractive -ExecutionPolicy Bypass -File `"$target`""
    $triggers = @(
        (New-ScheduledTaskTrigger -AtLogOn),
        (New-ScheduledTaskTrigger -Once -At (Get-Date) -RepetitionInterval (New-TimeSpan -Minutes 90))
    )
    $principal = New-ScheduledTaskPrincipal -UserId $SystemSid -LogonType ServiceAccount -RunLevel Highest
    $settings = New-ScheduledTaskSettingsSet -StartWhenAvailable -MultipleInstances IgnoreNew `
        -ExecutionTimeLimit (New-TimeSpan -Minutes 15)
    $null = Register-ScheduledTask -TaskName $TaskName -Action $action -Trigger $triggers `
        -Principal $principal -Settings $settings -Force
    # Last: when the server cannot be reached now, the task tries again.
    Invoke-KwCheckin
}

function Uninstall-KwAgent {
    if (Get-ScheduledTask -TaskName $TaskName -ErrorAction SilentlyContinue) {
        Unregister-ScheduledTask -TaskName $TaskName -Confirm:$false
    }
    if (Test-Path $KeyPath) {
        Remove-Item -Path $KeyPath -Recurse -Force
    }
    if (Test-Path $InstallDir) {
        Remove-Item -Path $InstallDir -Recurse -Force
    }
}

# The registry key is SYSTEM's alone: an administrator could not read it
# back, nor delete it.
if ([Security.Principal.WindowsIdentity]::GetCurrent().User.Value -ne $SystemSid) {
    throw 'run as SYSTEM (a Group Policy startup script, Intune, the scheduled task, or psexec -s)'
}

switch ($PSCmdlet.ParameterSetName) {
    'Install' {
        Install-KwAgent -Server $Server -Token $EnrollmentToken
    }
    'Uninstall' {
        Uninstall-KwAgent
    }
    default {
        Invoke-KwCheckin
    }
}
