namespace Lowbit.Backends;

/// <summary>A decode step recorded by <see cref="IBackend.RecordStep"/>, replayed once a token.</summary>
public interface IRecordedStep : IDisposable
{
    /// <summary>Runs the recorded step for <paramref name="token"/> at <paramref name="position"/>: every
    /// position the recording used is shifted by it, and its token 0 becomes this one.</summary>
    void Replay(int token, int position);
}
