using System.Globalization;

namespace Lowbit.Bench;

public sealed class ArgsException(string message) : Exception(message);

/// <summary>Minimal "--name value" / "--flag" parser; options unknown to the command are errors.</summary>
public sealed class Args
{
    private readonly Dictionary<string, List<string>> _values = new(StringComparer.Ordinal);
    private readonly HashSet<string> _flags = new(StringComparer.Ordinal);

    /// <param name="known">option names with their kind: true = takes a value, false = flag. Aliases: "-o" maps to "--output".</param>
    public Args(string[] args, IReadOnlyDictionary<string, bool> known)
    {
        for (int i = 0; i < args.Length; i++)
        {
            string name = args[i] == "-o" ? "--output" : args[i];
            if (!known.TryGetValue(name, out bool takesValue))
            {
                throw new ArgsException($"unknown option '{args[i]}'");
            }

            if (!takesValue)
            {
                _flags.Add(name);
                continue;
            }

            if (i + 1 >= args.Length)
            {
                throw new ArgsException($"option '{name}' needs a value");
            }

            if (!_values.TryGetValue(name, out var list))
            {
                _values[name] = list = [];
            }

            list.Add(args[++i]);
        }
    }

    public bool Flag(string name) => _flags.Contains(name);

    public string? String(string name) => _values.TryGetValue(name, out var v) ? v[^1] : null;

    public IReadOnlyList<string> All(string name) => _values.TryGetValue(name, out var v) ? v : [];

    public string RequiredString(string name) => String(name) ?? throw new ArgsException($"option '{name}' is required");

    public int Int(string name, int? fallback = null)
    {
        string? s = String(name);
        if (s is null)
        {
            return fallback ?? throw new ArgsException($"option '{name}' is required");
        }

        return int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out int v)
            ? v
            : throw new ArgsException($"option '{name}': '{s}' is not an integer");
    }

    public ulong ULong(string name, ulong fallback)
    {
        string? s = String(name);
        if (s is null)
        {
            return fallback;
        }

        return ulong.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out ulong v)
            ? v
            : throw new ArgsException($"option '{name}': '{s}' is not an unsigned integer");
    }
}
